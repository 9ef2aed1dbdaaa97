"""TEST FAKE torch.distributed: the env:// rendezvous's checks, without a network."""
import os

_group = None

def init_process_group(backend=None, init_method=None, world_size=-1, rank=-1, **_):
    global _group
    for name in ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE"):
        if name not in os.environ and not (name == "RANK" and rank >= 0) and not (name == "WORLD_SIZE" and world_size > 0):
            raise ValueError(f"Error initializing torch.distributed using env:// rendezvous: "
                             f"environment variable {name} expected, but not set")
    size = world_size if world_size > 0 else int(os.environ["WORLD_SIZE"])
    me = rank if rank >= 0 else int(os.environ["RANK"])
    if not 0 <= me < size:
        raise ValueError(f"rank {me} out of range for world size {size}")
    _group = (backend or "gloo", size, me)

def _need():
    if _group is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to call init_process_group.")
    return _group

def is_initialized():
    return _group is not None

def get_backend():
    return _need()[0]

def get_world_size():
    return _need()[1]

def get_rank():
    return _need()[2]

def barrier():
    _need()

def destroy_process_group():
    global _group
    _need()
    _group = None
