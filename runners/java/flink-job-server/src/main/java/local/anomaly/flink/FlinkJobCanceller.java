package local.anomaly.flink;

import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import org.apache.beam.runners.jobsubmission.JobCancelHook;
import org.apache.flink.api.common.JobExecutionResult;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.JobListener;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Makes Beam's job cancel reach the Flink job.
 *
 * <p>Beam's Flink runner submits attached and blocks in {@code execute()}; cancelling the Beam
 * job only interrupts that thread, and the Flink job (MiniCluster or standalone cluster) keeps
 * running. Registered as a Flink {@link JobListener} (configuration key
 * {@code execution.job-listeners}, set by {@link JobServerMain}), this class remembers the
 * {@link JobClient} of each submission by submitting thread; as a {@link JobCancelHook} it
 * cancels those jobs when Beam's job service cancels the invocation running on that thread.
 */
public class FlinkJobCanceller implements JobListener, JobCancelHook {
  private static final Logger LOG = LoggerFactory.getLogger(FlinkJobCanceller.class);
  private static final Map<Thread, Set<JobClient>> SUBMITTED = new ConcurrentHashMap<>();
  private static final long CANCEL_TIMEOUT_SECONDS = 30;

  @Override
  public void onJobSubmitted(JobClient jobClient, Throwable throwable) {
    if (jobClient != null) {
      SUBMITTED.computeIfAbsent(Thread.currentThread(), t -> ConcurrentHashMap.newKeySet())
          .add(jobClient);
    }
  }

  @Override
  public void onJobExecuted(JobExecutionResult result, Throwable throwable) {
    SUBMITTED.remove(Thread.currentThread());
  }

  @Override
  public int cancelJobsOf(Thread runnerThread) {
    Set<JobClient> clients = SUBMITTED.remove(runnerThread);
    if (clients == null) {
      return 0;
    }
    int cancelled = 0;
    for (JobClient client : clients) {
      try {
        client.cancel().get(CANCEL_TIMEOUT_SECONDS, TimeUnit.SECONDS);
        LOG.info("Cancelled Flink job {}", client.getJobID());
        cancelled++;
      } catch (Exception e) {
        LOG.warn("Could not cancel Flink job {}", client.getJobID(), e);
      }
    }
    return cancelled;
  }
}
