"""Training across processes (`accelerate launch`): each process's shard of a step, how the shards'
metrics combine, and the run store as seen from a process that may not write it.

Every process draws the same step's prompt list from (seed, step) and rolls out its contiguous slice,
so an N-process run trains on the same prompts per step as a 1-process run, and the shards
concatenated in rank order are the 1-process batch in its order (traces and metrics line up).
With one process every helper here is the identity, so that path is exactly the single-process one.
"""
from __future__ import annotations

import contextlib

from .config import SFT_FAMILY, ConfigError, TrainConfig
from .runs import RunWriter


def check_world(cfg: TrainConfig, world: int) -> None:
    """Refuse, before anything is written, a config that cannot be split over `world` processes."""
    if world == 1:
        return
    if cfg.batch_prompts % world:
        raise ConfigError(f"setting 'batch_prompts': {cfg.batch_prompts} problems per step cannot be split "
                          f"evenly over {world} processes; use a multiple of {world}")
    # The SFT baselines collect and train on whole datasets in one process; sharding them is not done.
    if cfg.method in SFT_FAMILY or (cfg.method == "score" and cfg.stage2 == "star"):
        what = "stage2=star" if cfg.method == "score" else f"method {cfg.method!r}"
        raise ConfigError(f"setting 'method': {what} runs in one process only, not under "
                          f"{world} processes (launch it without accelerate, or with --num_processes 1)")


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """[lo, hi) of the contiguous slice of n items that process `rank` of `world` takes."""
    per = n // world
    return rank * per, (rank + 1) * per


def shard_seed(seed: int, rank: int) -> int:
    """The sampling seed of a shard: the step's seed on rank 0 (the single-process seed), a distinct
    one on every other rank so that shards do not share a random stream."""
    return seed + rank * 7_919_000_009


def loss_stat_weights(stats: dict, n: int) -> dict[str, tuple[float, float]]:
    """reinforce_kl_loss's stats as (sum, count) pairs: losses, KL and lengths are means over the n
    episodes, entropy_t<j> a mean over attempt j's tokens (len_t<j> * n of them)."""
    pairs = {}
    for key, value in stats.items():
        weight = stats["len_t" + key[len("entropy_t"):]] * n if key.startswith("entropy_t") else n
        pairs[key] = (value * weight, weight)
    return pairs


def combine(shards: list[dict[str, tuple[float, float]]]) -> dict[str, float]:
    """The full-batch mean of every key from per-shard (sum, count) pairs: sum of sums over sum of
    counts, never a mean of the shards' means (which is wrong when shards weigh differently)."""
    out = {}
    for key in shards[0]:
        total = sum(s[key][0] for s in shards)
        count = sum(s[key][1] for s in shards)
        out[key] = total / count if count else 0.0
    return out


def gather_list(accelerator, items: list) -> list:
    """Every process's list, concatenated in rank order, on every process."""
    if accelerator.num_processes == 1:
        return items
    from accelerate.utils import gather_object

    return gather_object(list(items))


def reduce_means(accelerator, stats: dict, n: int) -> dict:
    """Full-batch loss statistics from each process's shard statistics (see loss_stat_weights)."""
    if accelerator.num_processes == 1:
        return stats
    return combine(gather_list(accelerator, [loss_stat_weights(stats, n)]))


def broadcast(accelerator, obj):
    """The main process's `obj` on every process."""
    if accelerator.num_processes == 1:
        return obj
    from accelerate.utils import broadcast_object_list

    return broadcast_object_list([obj], from_process=0)[0]


def sharded_weights(accelerator) -> bool:
    """True where a process holds only part of the weights (FSDP, DeepSpeed)."""
    return accelerator.distributed_type.name in ("FSDP", "DEEPSPEED")


@contextlib.contextmanager
def full_weights(accelerator, model, when: bool = True):
    """Rollouts and evaluation run on the unwrapped module, a different number of forward passes on each
    process; under FSDP its parameters must be gathered first (every process enters this together).
    DDP and DeepSpeed ZeRO-2 keep whole weights on every process: nothing to do."""
    if when and accelerator.distributed_type.name == "FSDP":
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(model, writeback=False):
            yield
    else:
        yield


class MainWriter:
    """The run writer on the main process and a writer that writes nothing on the others, so that a run
    store has exactly one writer however many processes train. Status lines carry world_size."""

    def __init__(self, accelerator, run_dir, config: dict, resume: bool):
        self.world_size = accelerator.num_processes
        self.writer = RunWriter(run_dir, config, resume=resume) if accelerator.is_main_process else None

    def set_status(self, state: str, step: int | None = None, error: str | None = None, **extra) -> None:
        if self.writer:
            self.writer.set_status(state, step, error, world_size=self.world_size, **extra)

    def log_metrics(self, record: dict) -> None:
        if self.writer:
            self.writer.log_metrics(record)

    def log_traces(self, records: list[dict]) -> None:
        if self.writer:
            self.writer.log_traces(records)

    def write_model(self, record: dict) -> None:
        if self.writer:
            self.writer.write_model(record)

    def write_eval(self, step: int, result: dict) -> None:
        if self.writer:
            self.writer.write_eval(step, result)

    def truncate_after(self, step: int) -> None:
        if self.writer:
            self.writer.truncate_after(step)
