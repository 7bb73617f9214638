package org.apache.beam.runners.jobsubmission;

import org.apache.beam.model.jobmanagement.v1.JobApi;
import org.apache.beam.sdk.PipelineResult;

/** A {@link PipelineResult} that can report its metrics as portable monitoring infos. */
public interface PortablePipelineResult extends PipelineResult {
  JobApi.MetricResults portableMetrics() throws UnsupportedOperationException;
}
