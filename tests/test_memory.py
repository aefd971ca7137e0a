"""Freed heap memory goes back to the system at the audit's phase ends (rai_audit.memory)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from rai_audit import memory


@pytest.mark.skipif(memory._trim is None, reason="no glibc malloc_trim here")
def test_freed_small_allocations_are_returned_to_the_system():
    """300 MB in 64 KiB pieces lives on the heap; freed with one piece kept at the top, glibc keeps
    the pages (resident stays high) until return_freed_memory trims them. Run in a fresh process so
    the heap's state does not depend on the tests before it."""
    code = (
        "import ctypes, gc\n"
        "from rai_audit import memory\n"
        "gc.disable()\n"
        "libc = ctypes.CDLL('libc.so.6'); libc.malloc.restype = ctypes.c_void_p; libc.free.argtypes = [ctypes.c_void_p]\n"
        "libc.mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD fixed at 1 MiB: 64 KiB pieces stay on the heap\n"
        "ptrs = [libc.malloc(64 << 10) for _ in range(4800)]\n"
        "for p in ptrs: ctypes.memset(p, 1, 64 << 10)\n"
        "keep = libc.malloc(64 << 10)  # a live piece above the freed ones: no automatic trim at the top\n"
        "for p in ptrs: libc.free(p)\n"
        "held = memory.resident_bytes()\n"
        "memory.return_freed_memory('the test')\n"
        "print(held, memory.resident_bytes())\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    held, after = map(int, r.stdout.split())
    assert held - after > 250 * 2**20, (held, after)


def test_a_released_lazy_backend_loads_again_and_still_counts_as_loaded():
    from rai_audit.execution import LazyBackend

    loads = []

    class Fake:
        def generate(self, requests):
            return ["x" for _ in requests]

    from rai_audit.backend import ModelInfo

    info = ModelInfo(model_id="fake", reference="fake", kind="dir")
    lazy = LazyBackend(info, loader=lambda info: loads.append(1) or Fake())
    assert not lazy.loaded
    assert lazy.generate([1]) == ["x"] and lazy.loaded
    lazy.release()
    assert lazy.loaded  # the run's record says the model was loaded
    assert lazy.generate([1, 2]) == ["x", "x"] and len(loads) == 2


def test_the_audit_returns_memory_after_the_finetune_and_after_each_models_probe_run(tmp_path, monkeypatch):
    """Which phases end with a trim: the finetune step, and every model's probe run (base, tuned)."""
    import rai_audit.audit as audit_mod
    import rai_audit.runner as runner_mod
    from rai_audit.config import parse_config
    from rai_audit.store import Store
    from tests.tiny_models import tiny_model_dir

    phases = []
    monkeypatch.setattr(runner_mod, "return_freed_memory", phases.append)
    monkeypatch.setattr(audit_mod, "return_freed_memory", phases.append)
    base, tuned = str(tiny_model_dir("llama")), str(tiny_model_dir("gpt2"))
    cfg = parse_config({"name": "trim", "models": {"base": base, "tuned": tuned},
                        "probes": [{"name": "identity_toxicity", "params": {"limit": 2, "k": 1, "max_new_tokens": 2}}],
                        "runtime": {"bootstrap": 20}, "output_dir": str(tmp_path / "out")})
    with Store.open(f"sqlite:///{tmp_path / 's.sqlite'}") as store:
        audit_mod.run_audit(cfg, store=store, formats="json")
    assert phases == [f"the probe run of {base}", f"the probe run of {tuned}"], phases

    class Result:
        export_dir, output_dir, manifest_path, steps, tokens_seen, final_loss, wall_s, run_id, losses = (
            tmp_path, tmp_path, tmp_path / "m.json", 1, 8, 1.0, 0.1, "r", [1.0])

    phases.clear()
    monkeypatch.setattr(audit_mod, "import_run_finetune", lambda: lambda *a, **k: Result())
    cfg.finetune = str(tmp_path / "ft.yaml")
    audit_mod.run_finetune_step(cfg, store=None, steps=1, progress=False)
    assert phases == ["the finetune step"]
