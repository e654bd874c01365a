"""congruence: compare neural networks at scale on compiled C++/CUDA kernels."""
