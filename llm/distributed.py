"""Data-parallel training over processes started by ``torchrun``: join, rank, world size, all-reduce.

``torchrun --nproc_per_node=N -m llm align ...`` starts N copies of the stage with ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK`` and ``MASTER_ADDR``/``MASTER_PORT`` in their environment; :func:`init`
joins them in one ``torch.distributed`` process group (gloo on CPU, NCCL on CUDA, one GPU per process).
Launched any other way, WORLD_SIZE is unset and every function here is the single-process identity.

How a step is split (``sft``, ``train-pm``, ``align``):
  1. every process draws the same global batch of ``batch_size`` rows (the batch stream is shared);
  2. the batch is cut into ``shards`` equal shards (``--shards``; 0 = one per process); process r owns
     the contiguous shards ``r k .. (r + 1) k - 1``, ``k = shards / world``, and each shard samples and
     labels its rows from its own random streams (:func:`shard_seed`);
  3. each shard backpropagates its part of the global loss (``mean = sum over shards of mean_s / shards``),
     so a process's gradient accumulates over its shards, and one all-reduce (sum) of the flattened
     gradients (:func:`all_reduce_grads`) gives every process the gradient of the global batch;
  4. every process takes the same optimiser step; only rank 0 writes (config, metrics, checkpoints,
     models, done.json).
The numbers therefore depend on ``shards``, not on the number of processes: one process with
``--shards N`` computes what N processes compute together (tests/llm/test_ddp.py), and the default
single-process run (one shard) is exactly the run before data parallelism existed.

Why not the ``DistributedDataParallel`` wrapper: the sampler calls the policy many times per step
without gradient (KV-cached generation) and a process may own several shards; an explicit all-reduce
after the shard loop is what DDP's reducer does for one bucket, with one code path for 1 and N
processes. Models that do not fit one GPU need sharded parameters (FSDP), see llm/README.md.

Teardown is explicit: the command's entry point (``llm/__main__.py``) calls :func:`shutdown` when
the command ends, before interpreter shutdown: a barrier (no process closes its connections while
another still talks to it), then ``destroy_process_group``, after which no gloo thread is left
(:func:`init` makes sure nothing else keeps the group alive). A group torn down during interpreter
shutdown instead could abort the process with SIGABRT after its work was done. The group lives
for the whole process: torchrun's rendezvous store cannot host a second group after the first is
destroyed, so several commands in one process share one group and :func:`shutdown` comes last.
"""

from __future__ import annotations

import importlib
import os

import torch
import torch.distributed as dist

from opo_toolkit.cliargs import UsageError

__all__ = ["launched_world_size", "init", "shutdown", "world_size", "rank", "is_writer", "on_rank_zero",
           "broadcast_object", "gather_dicts", "all_reduce_grads", "all_sum", "local_shards", "shard_seed"]


def launched_world_size() -> int:
    """The number of processes torchrun started (1 when not launched by torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def world_size() -> int:
    return dist.get_world_size() if dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_initialized() else 0


def is_writer() -> bool:
    """Only rank 0 writes files: the run folder has one writer."""
    return rank() == 0


def init(device: torch.device) -> torch.device:
    """Join torchrun's process group (once); returns this process's device (``cuda:LOCAL_RANK`` on GPUs)."""
    if launched_world_size() == 1 or dist.is_initialized():
        return device
    if device.type == "cuda":
        if device.index is not None:
            raise UsageError(f"--device {device}: under torchrun each process uses cuda:LOCAL_RANK; "
                             "pass --device cuda or auto")
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    # torch.distributed.nn.functional binds ``group.WORLD`` as the default argument of its
    # functions when it is imported (transformers' model code imports it). Imported after the group
    # exists, it holds the group, and gloo's threads, past destroy_process_group until interpreter
    # shutdown, where tearing them down aborted the process (SIGABRT). Imported first, it binds None.
    importlib.import_module("torch.distributed.nn.functional")
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown(completed: bool = True) -> None:
    """Leave the process group (idempotent; nothing to do outside torchrun): a barrier when the
    command ``completed`` on this process (every process finished its work: wait for the others),
    then ``destroy_process_group``. Without ``completed`` (an error, Ctrl-C) there is no barrier:
    the peers may be stuck in a collective, and torchrun stops them when this process exits."""
    if not dist.is_initialized():
        return
    try:
        if completed:
            dist.barrier()
    finally:
        dist.destroy_process_group()


def broadcast_object(obj):
    """Rank 0's ``obj`` on every process (picklable)."""
    if world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_rank_zero(fn, *args):
    """``fn(*args)`` run by rank 0 alone (e.g. reading or checking the run folder); every process
    returns its result, or raises its error, so no process waits for one that has stopped."""
    if world_size() == 1:
        return fn(*args)
    result = error = None
    if rank() == 0:
        try:
            result = fn(*args)
        except Exception as e:  # noqa: BLE001 - told to the other processes, then raised again
            error = e
    result, usage, message = broadcast_object(
        (result, isinstance(error, UsageError), None if error is None else str(error)))
    if error is not None:
        raise error
    if message is not None:
        raise UsageError(message) if usage else RuntimeError(f"rank 0 failed: {message}")
    return result


def gather_dicts(local: dict) -> dict:
    """The union of every process's ``local`` dict (e.g. the states of the shards' generators)."""
    if world_size() == 1:
        return dict(local)
    parts = [None] * world_size()
    dist.all_gather_object(parts, local)
    return {k: v for part in parts for k, v in part.items()}


def all_reduce_grads(params) -> None:
    """Sum the gradients over processes, in place, as one flattened buffer (one collective per step).

    Every process runs the same code on the same model, so the same parameters have gradients."""
    if world_size() == 1:
        return
    grads = [p.grad for p in params if p.grad is not None]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()


def all_sum(values: dict, device) -> dict:
    """``{name: sum over processes}`` of float ``values`` (the processes' sums over their shards)."""
    if world_size() == 1:
        return dict(values)
    names = list(values)  # the same order on every process: the same code built the dict
    t = torch.tensor([values[k] for k in names], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return dict(zip(names, t.tolist()))


def local_shards(shards: int, batch_size: int) -> list[tuple[int, slice]]:
    """``(shard, rows)`` of the shards this process owns: contiguous blocks of the global batch."""
    per_process, rows = shards // world_size(), batch_size // shards
    first = rank() * per_process
    return [(s, slice(s * rows, (s + 1) * rows)) for s in range(first, first + per_process)]


def shard_seed(seed: int, purpose: str, shard: int) -> int:
    """The seed of one shard's ``purpose`` stream (sampling, labels). Shard 0 keeps ``seed`` itself,
    so a one-shard run draws exactly what the project drew before data parallelism; shard s > 0
    gets an independent stream keyed by (seed, purpose, s), never by the process that runs it."""
    from .sampling import stream_seed

    return seed if shard == 0 else stream_seed(seed, purpose, shard)
