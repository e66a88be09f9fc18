"""Distribution hydra-sigopt-sweeper: a Hydra sweeper backed by SigOpt."""

from pathlib import Path

from setuptools import find_namespace_packages, setup

HERE = Path(__file__).parent

setup(
    name="hydra-sigopt-sweeper",
    version="0.1.0",
    description="Hydra sweeper plugin: Bayesian hyperparameter search with SigOpt, locally or on Slurm",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_namespace_packages(include=["hydra_plugins.*", "hydra_sigopt", "hydra_sigopt.*"]),
    include_package_data=True,
    install_requires=[
        "hydra-core>=1.3.2,<1.4",
        "omegaconf>=2.3,<2.4",
        # The async scheduler calls the launcher object the way its launch() does; pinned because
        # those are not public APIs (tests/test_launcher_internals.py fails loudly if they move).
        "hydra-submitit-launcher==1.2.0",
        "submitit>=1.5.1,<1.6",
        "sigopt>=8.8,<9",
        "PyYAML>=5",
    ],
    extras_require={
        # The local engine's real runtime needs. sigoptlite and libsigopt themselves are installed
        # with --no-deps by `hydra-sigopt install-engine`: their pins (numpy<1.23, jsonschema<4)
        # are stale and would break a modern scientific stack.
        "lite": ["numpy>=1.24", "scipy>=1.10", "jsonschema>=3.2", "qmcpy==1.2", "threadpoolctl>=3.1"],
        "plot": ["matplotlib>=3.6"],
        "test": [
            "pytest>=7",
            "pytest-timeout>=2",
            "hypothesis>=6.80",
            "scikit-learn>=1.3",
            "matplotlib>=3.6",
            # hydra_sigopt.lightning's tests train a tiny model on the CPU. torch pinned to the CPU
            # build this machine's pip finds on disk (a bare "torch" would fetch a CUDA build of GBs).
            "torch==2.13.0",
            "lightning>=2.1",
            # A launcher that runs trials in other processes without submitit (batches only).
            "hydra-joblib-launcher>=1.2",
        ],
        "dev": ["ruff>=0.6", "mypy>=1.8", "types-PyYAML"],
        "bench": ["hydra-optuna-sweeper>=1.2", "scikit-learn>=1.3", "matplotlib>=3.6"],
    },
    entry_points={"console_scripts": ["hydra-sigopt=hydra_sigopt.cli:main"]},
    classifiers=[
        "Framework :: Hydra",
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
    ],
)
