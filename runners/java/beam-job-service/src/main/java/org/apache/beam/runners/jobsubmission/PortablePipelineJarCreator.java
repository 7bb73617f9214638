package org.apache.beam.runners.jobsubmission;

import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.runners.fnexecution.provisioning.JobInfo;

/**
 * Placeholder for Beam's executable-jar writer ({@code --output_executable_path}), which this
 * project does not use: it fails with a clear message instead of writing a jar.
 */
public class PortablePipelineJarCreator implements PortablePipelineRunner {
  private final Class<?> mainClass;

  public PortablePipelineJarCreator(Class<?> mainClass) {
    this.mainClass = mainClass;
  }

  @Override
  public PortablePipelineResult run(RunnerApi.Pipeline pipeline, JobInfo jobInfo) {
    throw new UnsupportedOperationException(
        "--output_executable_path is not supported by this job server build (main class "
            + mainClass.getName()
            + "); submit the job to the job service instead.");
  }
}
