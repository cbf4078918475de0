# Pin the CPU kernels' instruction set so a CPU run gives the same numbers on any x86-64 machine:
# ATen's portable kernels, oneDNN's SSE4.1 kernels, MKL's conditional numerical reproducibility.
# CI sources this before the quick profile, and so must whoever regenerates results/quick/
# (the stored baseline is only comparable with runs made the same way). About 1.5x slower.
export ATEN_CPU_CAPABILITY=default
export ONEDNN_MAX_CPU_ISA=SSE41
export MKL_CBWR=COMPATIBLE
