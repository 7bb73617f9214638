"""Installable package of the sensor anomaly detector (also shipped to Beam workers)."""

import setuptools

BEAM_VERSION = '2.70.0'  # the one Beam version of the project: SDK, jars, containers
DOCKER_SDK = 'docker==7.2.0'

setuptools.setup(
    name='sensor-anomaly',
    version='0.1.0',
    description='Real-time anomaly detection for sensor streams on Apache Beam',
    python_requires='>=3.11,<3.12',
    packages=setuptools.find_packages(include=['pipeline', 'transforms', 'backtest', 'runners']),
    install_requires=[
        f'apache-beam=={BEAM_VERSION}',
        'kafka-python==3.0.12',
        'pyarrow==18.1.0',
    ],
    extras_require={
        'test': ['pytest==9.2.0', DOCKER_SDK],  # DOCKER_SDK: tests of runners/container.py
        'deploy': [DOCKER_SDK],  # python -m runners.container build|push (docs/deploying.md)
        'dataflow': [f'apache-beam[gcp]=={BEAM_VERSION}'],  # --runner=DataflowRunner
        'report': ['matplotlib==3.10.8'],  # make report: PNG plots of backtest results
    },
)
