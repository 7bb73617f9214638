package org.apache.beam.runners.jobsubmission;

import java.util.ArrayList;
import java.util.List;
import java.util.ServiceLoader;
import java.util.concurrent.CancellationException;
import java.util.function.Consumer;
import org.apache.beam.model.jobmanagement.v1.JobApi;
import org.apache.beam.model.jobmanagement.v1.JobApi.JobMessage;
import org.apache.beam.model.jobmanagement.v1.JobApi.JobState;
import org.apache.beam.model.jobmanagement.v1.JobApi.JobStateEvent;
import org.apache.beam.model.pipeline.v1.RunnerApi;
import org.apache.beam.runners.fnexecution.provisioning.JobInfo;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.vendor.grpc.v1p69p0.com.google.protobuf.util.Timestamps;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.base.Throwables;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.util.concurrent.FutureCallback;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.util.concurrent.Futures;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.util.concurrent.ListenableFuture;
import org.apache.beam.vendor.guava.v32_1_2_jre.com.google.common.util.concurrent.ListeningExecutorService;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * One submitted job: runs the runner on the executor, records state changes and messages, and
 * replays the history to every listener that subscribes later (the Python client subscribes to
 * the state and message streams after {@code run} returns).
 */
public class JobInvocation {
  private static final Logger LOG = LoggerFactory.getLogger(JobInvocation.class);

  private final JobInfo jobInfo;
  private final ListeningExecutorService executor;
  private final RunnerApi.Pipeline pipeline;
  private final PortablePipelineRunner runner;
  private final List<JobStateEvent> states = new ArrayList<>();
  private final List<JobMessage> messages = new ArrayList<>();
  private final List<Consumer<JobStateEvent>> stateListeners = new ArrayList<>();
  private final List<Consumer<JobMessage>> messageListeners = new ArrayList<>();
  private volatile JobApi.MetricResults metrics = JobApi.MetricResults.getDefaultInstance();
  private volatile PortablePipelineResult runningResult;
  private ListenableFuture<PortablePipelineResult> future;
  private volatile Thread runnerThread;
  private volatile boolean cancelRequested;

  public JobInvocation(
      JobInfo jobInfo,
      ListeningExecutorService executorService,
      RunnerApi.Pipeline pipeline,
      PortablePipelineRunner pipelineRunner) {
    this.jobInfo = jobInfo;
    this.executor = executorService;
    this.pipeline = pipeline;
    this.runner = pipelineRunner;
    setState(JobState.Enum.STOPPED);
  }

  public synchronized void start() {
    if (getState() != JobState.Enum.STOPPED) {
      throw new IllegalStateException("Job " + getId() + " was already started.");
    }
    LOG.info("Starting job invocation {}", getId());
    setState(JobState.Enum.STARTING);
    future =
        executor.submit(
            () -> {
              runnerThread = Thread.currentThread();
              try {
                return runner.run(pipeline, jobInfo);
              } finally {
                runnerThread = null;
              }
            });
    setState(JobState.Enum.RUNNING);
    Futures.addCallback(
        future,
        new FutureCallback<PortablePipelineResult>() {
          @Override
          public void onSuccess(PortablePipelineResult result) {
            if (result == null) {
              setState(JobState.Enum.UNSPECIFIED);
              return;
            }
            PipelineResult.State state = result.getState();
            if (state.isTerminal()) {
              metrics = result.portableMetrics();
            } else {
              // Detached or still running: keep the handle to query metrics and cancel later.
              runningResult = result;
            }
            setState(toJobState(state));
          }

          @Override
          public void onFailure(Throwable t) {
            if (t instanceof CancellationException || cancelRequested) {
              LOG.info("Job invocation {} cancelled ({})", getId(), t.toString());
              setState(JobState.Enum.CANCELLED);
              return;
            }
            LOG.error("Job invocation {} failed.", getId(), t);
            sendMessage(JobMessage.MessageImportance.JOB_MESSAGE_DEBUG,
                Throwables.getStackTraceAsString(t));
            sendMessage(JobMessage.MessageImportance.JOB_MESSAGE_ERROR,
                Throwables.getRootCause(t).toString());
            setState(JobState.Enum.FAILED);
          }
        },
        executor);
  }

  private static JobState.Enum toJobState(PipelineResult.State state) {
    switch (state) {
      case DONE:
        return JobState.Enum.DONE;
      case RUNNING:
        return JobState.Enum.RUNNING;
      case CANCELLED:
        return JobState.Enum.CANCELLED;
      case FAILED:
        return JobState.Enum.FAILED;
      default:
        return JobState.Enum.UNSPECIFIED;
    }
  }

  public synchronized void cancel() {
    LOG.info("Cancelling job invocation {}", getId());
    cancelRequested = true;
    PortablePipelineResult handle = runningResult;
    if (handle != null) {
      try {
        handle.cancel();
        setState(JobState.Enum.CANCELLED);
      } catch (Exception e) {
        throw new RuntimeException("Could not cancel job " + getId(), e);
      }
    } else if (future != null) {
      Thread thread = runnerThread;
      if (thread != null) {
        for (JobCancelHook hook :
            ServiceLoader.load(JobCancelHook.class, JobInvocation.class.getClassLoader())) {
          try {
            LOG.info("{} cancelled {} engine job(s) of invocation {}",
                hook.getClass().getSimpleName(), hook.cancelJobsOf(thread), getId());
          } catch (RuntimeException e) {
            LOG.warn("{} could not cancel the jobs of invocation {}",
                hook.getClass().getSimpleName(), getId(), e);
          }
        }
      }
      // Interrupting the runner thread alone leaves an attached engine job running.
      future.cancel(true);
    }
  }

  public String getId() {
    return jobInfo.jobId();
  }

  public JobApi.MetricResults getMetrics() {
    PortablePipelineResult handle = runningResult;
    if (handle != null) {
      metrics = handle.portableMetrics();
    }
    return metrics;
  }

  public synchronized JobStateEvent getStateEvent() {
    return states.get(states.size() - 1);
  }

  public JobState.Enum getState() {
    return getStateEvent().getState();
  }

  public RunnerApi.Pipeline getPipeline() {
    return pipeline;
  }

  public synchronized void addStateListener(Consumer<JobStateEvent> listener) {
    states.forEach(listener);
    stateListeners.add(listener);
  }

  public synchronized void addMessageListener(Consumer<JobMessage> listener) {
    messages.forEach(listener);
    messageListeners.add(listener);
  }

  public JobApi.JobInfo toProto() {
    return JobApi.JobInfo.newBuilder()
        .setJobId(jobInfo.jobId())
        .setJobName(jobInfo.jobName())
        .setPipelineOptions(jobInfo.pipelineOptions())
        .setState(getState())
        .build();
  }

  private synchronized void setState(JobState.Enum state) {
    JobStateEvent event =
        JobStateEvent.newBuilder()
            .setState(state)
            .setTimestamp(Timestamps.fromMillis(System.currentTimeMillis()))
            .build();
    states.add(event);
    deliver(stateListeners, event);
  }

  private synchronized void sendMessage(JobMessage.MessageImportance importance, String text) {
    JobMessage message =
        JobMessage.newBuilder()
            .setMessageId(Integer.toString(messages.size()))
            .setTime(Long.toString(System.currentTimeMillis()))
            .setImportance(importance)
            .setMessageText(text)
            .build();
    messages.add(message);
    deliver(messageListeners, message);
  }

  /** Calls each listener; one that fails (e.g. its client went away) is dropped. */
  private static <T> void deliver(List<Consumer<T>> listeners, T value) {
    for (Consumer<T> listener : new ArrayList<>(listeners)) {
      try {
        listener.accept(value);
      } catch (RuntimeException e) {
        LOG.debug("Dropping a listener that failed: {}", e.toString());
        listeners.remove(listener);
      }
    }
  }

  public static Boolean isTerminated(JobState.Enum state) {
    return state == JobState.Enum.DONE
        || state == JobState.Enum.FAILED
        || state == JobState.Enum.CANCELLED
        || state == JobState.Enum.DRAINED;
  }
}
