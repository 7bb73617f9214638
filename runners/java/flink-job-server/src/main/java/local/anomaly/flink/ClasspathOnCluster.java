package local.anomaly.flink;

import java.util.Collections;
import java.util.List;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesDetector;

/**
 * Stages no jars with a job: for a Flink cluster whose JobManager and TaskManagers already
 * carry the job server's classpath (runners/flink_cluster.sh puts it in their lib folder).
 *
 * <p>Beam's Flink job server otherwise ships its whole classpath (~190 jars, ~200 MB) as the
 * user jars of every job it submits; uploading them took 18-25 s of each submission here, the
 * largest part of resuming a job from a savepoint. Chosen per job with the pipeline option
 * {@code --pipeline_resources_detector_factory_class=local.anomaly.flink.ClasspathOnCluster}
 * (runners/flink_options.py sets it for the project's cluster); without it a job ships its
 * jars as usual and runs on any Flink cluster.
 */
public final class ClasspathOnCluster
    implements PipelineResourcesDetector.Factory, PipelineResourcesDetector {
  private static final long serialVersionUID = 1L;

  /** What Beam calls to make the factory named by the option. */
  public static ClasspathOnCluster create() {
    return new ClasspathOnCluster();
  }

  @Override
  public PipelineResourcesDetector getPipelineResourcesDetector() {
    return this;
  }

  @Override
  public List<String> detect(ClassLoader classLoader) {
    return Collections.emptyList();
  }
}
