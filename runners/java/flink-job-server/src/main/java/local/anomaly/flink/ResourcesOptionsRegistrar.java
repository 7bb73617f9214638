package local.anomaly.flink;

import java.util.Collections;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsRegistrar;
import org.apache.beam.sdk.util.construction.resources.PipelineResourcesOptions;

/**
 * Makes the job server list Beam's {@link PipelineResourcesOptions} among the options it
 * accepts. Python's portable runner forwards an option it does not know itself only when the
 * job server lists it, so without this {@code --pipeline_resources_detector_factory_class}
 * (which selects {@link ClasspathOnCluster}) would be dropped before reaching the job server.
 */
public final class ResourcesOptionsRegistrar implements PipelineOptionsRegistrar {
  @Override
  public Iterable<Class<? extends PipelineOptions>> getPipelineOptions() {
    return Collections.singletonList(PipelineResourcesOptions.class);
  }
}
