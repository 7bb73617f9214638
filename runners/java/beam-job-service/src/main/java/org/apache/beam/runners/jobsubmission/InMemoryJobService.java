package org.apache.beam.runners.jobsubmission;

import java.util.ArrayDeque;
import java.util.Deque;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.UUID;
import java.util.concurrent.ConcurrentHashMap;
import java.util.function.Function;
import org.apache.beam.model.jobmanagement.v1.JobApi;
import org.apache.beam.model.jobmanagement.v1.JobApi.JobMessagesResponse;
import org.apache.beam.model.jobmanagement.v1.JobApi.JobStateEvent;
import org.apache.beam.model.jobmanagement.v1.JobServiceGrpc;
import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.runners.fnexecution.artifact.ArtifactStagingService;
import org.apache.beam.sdk.fn.server.FnService;
import org.apache.beam.sdk.fn.server.GrpcFnServer;
import org.apache.beam.sdk.fn.stream.SynchronizedStreamObserver;
import org.apache.beam.sdk.function.ThrowingConsumer;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.util.construction.graph.PipelineValidator;
import org.apache.beam.vendor.grpc.v1p69p0.com.google.protobuf.Struct;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.Status;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.StatusException;
import org.apache.beam.vendor.grpc.v1p69p0.io.grpc.stub.StreamObserver;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Beam Job API service kept in memory: prepare (register the job's artifacts with the staging
 * service), run (resolve the staged artifacts into the pipeline and hand it to the {@link
 * JobInvoker}), and the state, message, metrics and cancel calls of the Python client.
 */
public class InMemoryJobService extends JobServiceGrpc.JobServiceImplBase implements FnService {
  private static final Logger LOG = LoggerFactory.getLogger(InMemoryJobService.class);

  public static final int DEFAULT_MAX_INVOCATION_HISTORY = 10;

  private static final class Preparation {
    final RunnerApi.Pipeline pipeline;
    final Struct options;
    final String stagingToken;

    Preparation(RunnerApi.Pipeline pipeline, Struct options, String stagingToken) {
      this.pipeline = pipeline;
      this.options = options;
      this.stagingToken = stagingToken;
    }
  }

  @FunctionalInterface
  private interface Call<T> {
    T apply() throws Exception;
  }

  private final GrpcFnServer<ArtifactStagingService> staging;
  private final Function<String, String> stagingTokenForPreparation;
  private final ThrowingConsumer<Exception, String> cleanupJob;
  private final JobInvoker invoker;
  private final int maxInvocationHistory;
  private final Map<String, Preparation> preparations = new ConcurrentHashMap<>();
  private final Map<String, JobInvocation> invocations = new ConcurrentHashMap<>();
  private final Deque<String> finished = new ArrayDeque<>();

  public static InMemoryJobService create(
      GrpcFnServer<ArtifactStagingService> stagingService,
      Function<String, String> stagingServiceTokenProvider,
      ThrowingConsumer<Exception, String> cleanupJobFn,
      JobInvoker invoker) {
    return create(
        stagingService, stagingServiceTokenProvider, cleanupJobFn, invoker,
        DEFAULT_MAX_INVOCATION_HISTORY);
  }

  public static InMemoryJobService create(
      GrpcFnServer<ArtifactStagingService> stagingService,
      Function<String, String> stagingServiceTokenProvider,
      ThrowingConsumer<Exception, String> cleanupJobFn,
      JobInvoker invoker,
      int maxInvocationHistory) {
    return new InMemoryJobService(
        stagingService, stagingServiceTokenProvider, cleanupJobFn, invoker, maxInvocationHistory);
  }

  private InMemoryJobService(
      GrpcFnServer<ArtifactStagingService> staging,
      Function<String, String> stagingTokenForPreparation,
      ThrowingConsumer<Exception, String> cleanupJob,
      JobInvoker invoker,
      int maxInvocationHistory) {
    if (maxInvocationHistory < 0) {
      throw new IllegalArgumentException("maxInvocationHistory must be >= 0");
    }
    this.staging = staging;
    this.stagingTokenForPreparation = stagingTokenForPreparation;
    this.cleanupJob = cleanupJob;
    this.invoker = invoker;
    this.maxInvocationHistory = maxInvocationHistory;
  }

  /** Answers a unary call, turning exceptions into gRPC errors. */
  private static <T> void respond(String what, StreamObserver<T> observer, Call<T> call) {
    T response;
    try {
      response = call.apply();
    } catch (StatusException e) {
      observer.onError(e);
      return;
    } catch (Exception e) {
      LOG.error("{} failed", what, e);
      observer.onError(
          Status.INTERNAL.withDescription(what + ": " + e).withCause(e).asException());
      return;
    }
    observer.onNext(response);
    observer.onCompleted();
  }

  private JobInvocation invocation(String jobId) throws StatusException {
    JobInvocation invocation = invocations.get(jobId);
    if (invocation == null) {
      throw Status.NOT_FOUND.withDescription("Unknown job id " + jobId).asException();
    }
    return invocation;
  }

  @Override
  public void prepare(
      JobApi.PrepareJobRequest request, StreamObserver<JobApi.PrepareJobResponse> observer) {
    respond(
        "prepare " + request.getJobName(),
        observer,
        () -> {
          String preparationId = request.getJobName() + "_" + UUID.randomUUID();
          String token = stagingTokenForPreparation.apply(preparationId);
          Map<String, List<RunnerApi.ArtifactInformation>> dependencies = new HashMap<>();
          request
              .getPipeline()
              .getComponents()
              .getEnvironmentsMap()
              .forEach((id, env) -> dependencies.put(id, env.getDependenciesList()));
          staging.getService().registerJob(token, dependencies);
          preparations.put(
              preparationId,
              new Preparation(request.getPipeline(), request.getPipelineOptions(), token));
          return JobApi.PrepareJobResponse.newBuilder()
              .setPreparationId(preparationId)
              .setArtifactStagingEndpoint(staging.getApiServiceDescriptor())
              .setStagingSessionToken(token)
              .build();
        });
  }

  @Override
  public void run(JobApi.RunJobRequest request, StreamObserver<JobApi.RunJobResponse> observer) {
    String preparationId = request.getPreparationId();
    respond(
        "run " + preparationId,
        observer,
        () -> {
          Preparation preparation = preparations.remove(preparationId);
          if (preparation == null) {
            throw Status.NOT_FOUND
                .withDescription("Unknown preparation id " + preparationId)
                .asException();
          }
          try {
            PipelineValidator.validate(preparation.pipeline);
          } catch (RuntimeException e) {
            throw Status.INVALID_ARGUMENT
                .withDescription("Invalid pipeline: " + e)
                .withCause(e)
                .asException();
          }
          RunnerApi.Pipeline pipeline =
              withStagedArtifacts(preparation.pipeline, preparation.stagingToken);
          JobInvocation invocation =
              invoker.invoke(pipeline, preparation.options, request.getRetrievalToken());
          String jobId = invocation.getId();
          invocation.addStateListener(
              event -> {
                if (JobInvocation.isTerminated(event.getState())) {
                  onTerminated(jobId, preparation.stagingToken);
                }
              });
          invocations.put(jobId, invocation);
          invocation.start();
          return JobApi.RunJobResponse.newBuilder().setJobId(jobId).build();
        });
  }

  /** Replaces each environment's declared dependencies by the artifacts actually staged. */
  private RunnerApi.Pipeline withStagedArtifacts(RunnerApi.Pipeline pipeline, String token) {
    Map<String, List<RunnerApi.ArtifactInformation>> staged =
        staging.getService().getStagedArtifacts(token);
    RunnerApi.Pipeline.Builder builder = pipeline.toBuilder();
    for (Map.Entry<String, RunnerApi.Environment> entry :
        pipeline.getComponents().getEnvironmentsMap().entrySet()) {
      RunnerApi.Environment env = entry.getValue();
      if (env.getDependenciesCount() == 0) {
        continue;
      }
      if (staged == null || !staged.containsKey(entry.getKey())) {
        throw new IllegalStateException(
            "Environment " + entry.getKey() + " declares artifacts that were not staged.");
      }
      builder
          .getComponentsBuilder()
          .putEnvironments(
              entry.getKey(),
              env.toBuilder().clearDependencies().addAllDependencies(staged.get(entry.getKey()))
                  .build());
    }
    return builder.build();
  }

  private void onTerminated(String jobId, String stagingToken) {
    try {
      if (cleanupJob != null) {
        cleanupJob.accept(stagingToken);
      }
    } catch (Exception e) {
      LOG.warn("Could not remove the staged artifacts of job {}", jobId, e);
    }
    synchronized (finished) {
      finished.addLast(jobId);
      while (finished.size() > maxInvocationHistory) {
        invocations.remove(finished.removeFirst());
      }
    }
  }

  @Override
  public void getJobs(JobApi.GetJobsRequest request, StreamObserver<JobApi.GetJobsResponse> o) {
    respond(
        "getJobs",
        o,
        () -> {
          JobApi.GetJobsResponse.Builder response = JobApi.GetJobsResponse.newBuilder();
          invocations.values().forEach(inv -> response.addJobInfo(inv.toProto()));
          return response.build();
        });
  }

  @Override
  public void getState(JobApi.GetJobStateRequest request, StreamObserver<JobStateEvent> o) {
    respond("getState", o, () -> invocation(request.getJobId()).getStateEvent());
  }

  @Override
  public void getPipeline(
      JobApi.GetJobPipelineRequest request, StreamObserver<JobApi.GetJobPipelineResponse> o) {
    respond(
        "getPipeline",
        o,
        () ->
            JobApi.GetJobPipelineResponse.newBuilder()
                .setPipeline(invocation(request.getJobId()).getPipeline())
                .build());
  }

  @Override
  public void cancel(JobApi.CancelJobRequest request, StreamObserver<JobApi.CancelJobResponse> o) {
    respond(
        "cancel",
        o,
        () -> {
          JobInvocation invocation = invocation(request.getJobId());
          invocation.cancel();
          return JobApi.CancelJobResponse.newBuilder().setState(invocation.getState()).build();
        });
  }

  @Override
  public void getStateStream(
      JobApi.GetJobStateRequest request, StreamObserver<JobStateEvent> observer) {
    try {
      JobInvocation invocation = invocation(request.getJobId());
      StreamObserver<JobStateEvent> sync = SynchronizedStreamObserver.wrapping(observer);
      invocation.addStateListener(
          event -> {
            sync.onNext(event);
            if (JobInvocation.isTerminated(event.getState())) {
              sync.onCompleted();
            }
          });
    } catch (StatusException e) {
      observer.onError(e);
    }
  }

  @Override
  public void getMessageStream(
      JobApi.JobMessagesRequest request, StreamObserver<JobMessagesResponse> observer) {
    try {
      JobInvocation invocation = invocation(request.getJobId());
      StreamObserver<JobMessagesResponse> sync = SynchronizedStreamObserver.wrapping(observer);
      // Messages first: the stream ends with the terminal state, which follows the last message.
      invocation.addMessageListener(
          message -> sync.onNext(JobMessagesResponse.newBuilder().setMessageResponse(message).build()));
      invocation.addStateListener(
          event -> {
            sync.onNext(JobMessagesResponse.newBuilder().setStateResponse(event).build());
            if (JobInvocation.isTerminated(event.getState())) {
              sync.onCompleted();
            }
          });
    } catch (StatusException e) {
      observer.onError(e);
    }
  }

  @Override
  public void getJobMetrics(
      JobApi.GetJobMetricsRequest request, StreamObserver<JobApi.GetJobMetricsResponse> o) {
    respond(
        "getJobMetrics",
        o,
        () ->
            JobApi.GetJobMetricsResponse.newBuilder()
                .setMetrics(invocation(request.getJobId()).getMetrics())
                .build());
  }

  @Override
  public void describePipelineOptions(
      JobApi.DescribePipelineOptionsRequest request,
      StreamObserver<JobApi.DescribePipelineOptionsResponse> o) {
    respond(
        "describePipelineOptions",
        o,
        () ->
            JobApi.DescribePipelineOptionsResponse.newBuilder()
                .addAllOptions(
                    PipelineOptionsFactory.describe(PipelineOptionsFactory.getRegisteredOptions()))
                .build());
  }

  @Override
  public void close() {}
}
