# Custom Beam SDK container of the job, for runners that start Python workers in Docker:
#   --environment_type=DOCKER --sdk_container_image=REGISTRY/anomaly:TAG   (portable runners)
#   --sdk_container_image=REGISTRY/anomaly:TAG                             (Dataflow)
# Build and push it with `python -m runners.container build --push --image REGISTRY/anomaly:TAG`
# (docs/deploying.md). The base tag is the apache-beam version pinned in setup.py
# (tests/test_container.py checks it): the SDK in the image must equal the submitter's.
FROM apache/beam_python3.11_sdk:2.70.0

# Only what the workers import: the package metadata and the job's two packages.
COPY setup.py /opt/anomaly/src/
COPY pipeline/ /opt/anomaly/src/pipeline/
COPY transforms/ /opt/anomaly/src/transforms/

# setup.py pins every dependency; Beam itself is already in the base image at the same
# version. pip check fails the build if anything installed disagrees.
RUN pip install --no-cache-dir /opt/anomaly/src \
    && rm -rf /opt/anomaly/src \
    && pip check

# The base image's ENTRYPOINT (/opt/apache/beam/boot) stays: it starts the SDK worker.
