package org.apache.beam.runners.jobsubmission;

import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import org.apache.beam.model.pipeline.v1.RunnerApi.Pipeline;
import org.apache.beam.vendor.grpc.v1p69p0.com.google.protobuf.Message;
import org.apache.beam.vendor.grpc.v1p69p0.com.google.protobuf.Struct;
import org.apache.beam.vendor.grpc.v1p69p0.com.google.protobuf.util.JsonFormat;

/**
 * Reads a pipeline packed into a jar by Python's {@code --flink_submit_uber_jar}: resources
 * {@code BEAM-PIPELINE/pipeline-manifest.json} ({"defaultJobName": ...}) and
 * {@code BEAM-PIPELINE/<job>/pipeline.json}, {@code BEAM-PIPELINE/<job>/pipeline-options.json}.
 */
public final class PortablePipelineJarUtils {
  private static final String FOLDER = "BEAM-PIPELINE";

  private PortablePipelineJarUtils() {}

  private static String readResource(String path) throws IOException {
    try (InputStream in =
        PortablePipelineJarUtils.class.getClassLoader().getResourceAsStream(path)) {
      if (in == null) {
        throw new FileNotFoundException("Resource " + path + " not found on the classpath.");
      }
      return new String(in.readAllBytes(), StandardCharsets.UTF_8);
    }
  }

  private static <B extends Message.Builder> B parse(String path, B builder) throws IOException {
    JsonFormat.parser().merge(readResource(path), builder);
    return builder;
  }

  public static Pipeline getPipelineFromClasspath(String jobName) throws IOException {
    return parse(FOLDER + "/" + jobName + "/pipeline.json", Pipeline.newBuilder()).build();
  }

  public static Struct getPipelineOptionsFromClasspath(String jobName) throws IOException {
    return parse(FOLDER + "/" + jobName + "/pipeline-options.json", Struct.newBuilder()).build();
  }

  public static String getDefaultJobName() throws IOException {
    Struct manifest = parse(FOLDER + "/pipeline-manifest.json", Struct.newBuilder()).build();
    return manifest.getFieldsOrThrow("defaultJobName").getStringValue();
  }
}
