from pathlib import Path

from setuptools import find_packages, setup

setup(
    name="embodireward",
    version="0.1.0",
    description="JSON-configured, registry-based robot reinforcement learning with learned reward models",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    packages=find_packages(include=["embodireward", "embodireward.*"]),
    python_requires=">=3.10",
    install_requires=[
        "torch>=2.2",
        "torchvision>=0.17",
        "gymnasium>=1.0",
        "numpy",
        "tensorboard",
        "wandb",
        "imageio",
        "imageio-ffmpeg",  # MP4 eval videos (embodireward eval --video)
        "matplotlib",  # embodireward plot, pipeline report figures
        "scipy",  # t and normal quantiles of the confidence intervals
        "pillow>=10.1",  # caption bands of eval videos (a sized default font)
        "safetensors",
        "tqdm",
    ],
    extras_require={
        # ManiSkill3 is imported lazily: the core runs without it
        "maniskill": ["mani-skill"],
        "test": ["pytest", "pygame"],
    },
    entry_points={
        "console_scripts": [
            "embodireward=embodireward.commands:cli",
        ],
    },
)
