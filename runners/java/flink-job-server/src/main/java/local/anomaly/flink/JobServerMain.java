package local.anomaly.flink;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.apache.beam.runners.flink.FlinkJobServerDriver;

/**
 * Entry point of the job server launcher jar: Beam's {@link FlinkJobServerDriver}, with a Flink
 * client configuration that registers {@link FlinkJobCanceller}.
 *
 * <p>Unless {@code --flink-conf-dir} or the FLINK_CONF_DIR environment variable names a Flink
 * configuration (which should then set {@code execution.job-listeners} itself), it writes a
 * temporary one holding only that listener, so both Python's flink_job_server_jar option and
 * runners/job_server.sh get cancellable jobs.
 *
 * <p>It also defaults {@code --clean-artifacts-per-job} to false: when Python starts the job
 * server itself, Python deletes the staging folder on exit, and deleting the same files here at
 * job end races with it; Beam 2.70's Python job server wrapper then fails in its cleanup
 * (FileNotFoundError in shutil.rmtree) before it stops this process, which is left running.
 * runners/job_server.sh, a long-lived server, passes {@code --clean-artifacts-per-job true}.
 */
public final class JobServerMain {
  private JobServerMain() {}

  public static void main(String[] args) throws Exception {
    List<String> arguments = new ArrayList<>(Arrays.asList(args));
    if (!hasOption(arguments, "--flink-conf-dir") && System.getenv("FLINK_CONF_DIR") == null) {
      arguments.add("--flink-conf-dir");
      arguments.add(writeClientConf().toString());
    }
    if (!hasOption(arguments, "--clean-artifacts-per-job")) {
      arguments.add("--clean-artifacts-per-job");
      arguments.add("false");
    }
    FlinkJobServerDriver.main(arguments.toArray(new String[0]));
  }

  private static boolean hasOption(List<String> arguments, String name) {
    return arguments.stream().anyMatch(a -> a.equals(name) || a.startsWith(name + "="));
  }

  private static Path writeClientConf() throws IOException {
    Path dir = Files.createTempDirectory("beam-flink-client-conf");
    Path conf = dir.resolve("config.yaml");
    Files.write(
        conf,
        ("execution.job-listeners: " + FlinkJobCanceller.class.getName() + "\n")
            .getBytes(StandardCharsets.UTF_8));
    conf.toFile().deleteOnExit();
    dir.toFile().deleteOnExit();
    return dir;
  }
}
