package org.apache.beam.runners.jobsubmission;

/**
 * Cancels the engine jobs that a runner thread started. A runner that blocks in an attached
 * submission (Flink's {@code execute()}) does not stop the engine's job when that thread is
 * interrupted, so {@link JobInvocation#cancel()} first asks every hook found with {@link
 * java.util.ServiceLoader} to cancel the jobs of the invocation's runner thread.
 */
public interface JobCancelHook {
  /** Cancels the jobs submitted from {@code runnerThread}; returns how many it cancelled. */
  int cancelJobsOf(Thread runnerThread);
}
