package org.apache.beam.runners.jobsubmission;

import java.io.IOException;
import java.nio.file.Paths;
import org.apache.beam.model.pipeline.v1.Endpoints;
import org.apache.beam.runners.fnexecution.artifact.ArtifactStagingService;
import org.apache.beam.sdk.expansion.service.ExpansionServer;
import org.apache.beam.sdk.expansion.service.ExpansionService;
import org.apache.beam.sdk.fn.server.FnService;
import org.apache.beam.sdk.fn.server.GrpcFnServer;
import org.apache.beam.sdk.fn.server.ServerFactory;
import org.kohsuke.args4j.Option;
import org.kohsuke.args4j.spi.ExplicitBooleanOptionHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Serves the Job API, the artifact staging service and a Java expansion service; runners supply
 * the {@link JobInvoker}. The command-line options are the ones Beam's Python SDK passes to a
 * job server jar ({@code --job-port}, {@code --artifact-port}, {@code --expansion-port},
 * {@code --artifacts-dir}, ...).
 */
public abstract class JobServerDriver implements Runnable {
  private static final Logger LOG = LoggerFactory.getLogger(JobServerDriver.class);

  /** Creates the runner's {@link JobInvoker} when the job service starts. */
  public interface JobInvokerFactory {
    JobInvoker create();
  }

  /** Options shared by all job servers; runners extend it with their own. */
  public static class ServerConfiguration {
    @Option(name = "--job-host", usage = "Host name the job service binds to (default localhost)")
    private String host = "localhost";

    @Option(name = "--job-port", usage = "Job service port, 0 for any free port (default 8099)")
    private int port = 8099;

    @Option(name = "--artifact-port", usage = "Artifact staging port, 0 for any (default 8098)")
    private int artifactPort = 8098;

    @Option(name = "--expansion-port", usage = "Java expansion service port, 0 for any (default 8097)")
    private int expansionPort = 8097;

    @Option(
        name = "--artifacts-dir",
        usage = "Directory for staged artifacts; must be readable by the workers")
    private String artifactStagingPath =
        Paths.get(System.getProperty("java.io.tmpdir"), "beam-artifact-staging").toString();

    @Option(
        name = "--clean-artifacts-per-job",
        usage = "Remove a job's staged artifacts when it ends (default true)",
        handler = ExplicitBooleanOptionHandler.class)
    private boolean cleanArtifactsPerJob = true;

    @Option(name = "--history-size", usage = "Number of finished jobs kept (default 10)")
    private int maxInvocationHistory = InMemoryJobService.DEFAULT_MAX_INVOCATION_HISTORY;

    public String getHost() {
      return host;
    }

    public int getPort() {
      return port;
    }

    public int getArtifactPort() {
      return artifactPort;
    }

    public int getExpansionPort() {
      return expansionPort;
    }

    public String getArtifactStagingPath() {
      return artifactStagingPath;
    }

    public boolean isCleanArtifactsPerJob() {
      return cleanArtifactsPerJob;
    }

    public int getMaxInvocationHistory() {
      return maxInvocationHistory;
    }
  }

  public ServerConfiguration configuration;

  private final ServerFactory jobServerFactory;
  private final ServerFactory artifactServerFactory;
  private final JobInvokerFactory jobInvokerFactory;
  private volatile GrpcFnServer<InMemoryJobService> jobServer;
  private volatile GrpcFnServer<ArtifactStagingService> artifactServer;
  private volatile ExpansionServer expansionServer;

  protected JobServerDriver(
      ServerConfiguration configuration,
      ServerFactory jobServerFactory,
      ServerFactory artifactServerFactory,
      JobInvokerFactory jobInvokerFactory) {
    this.configuration = configuration;
    this.jobServerFactory = jobServerFactory;
    this.artifactServerFactory = artifactServerFactory;
    this.jobInvokerFactory = jobInvokerFactory;
  }

  protected static ServerFactory createJobServerFactory(ServerConfiguration configuration) {
    return ServerFactory.createWithPortSupplier(() -> configuration.port);
  }

  protected static ServerFactory createArtifactServerFactory(ServerConfiguration configuration) {
    return ServerFactory.createWithPortSupplier(() -> configuration.artifactPort);
  }

  protected String createSessionToken(String preparationId) {
    return preparationId;
  }

  private <T extends FnService> GrpcFnServer<T> serve(T service, int port, ServerFactory factory)
      throws IOException {
    if (port == 0) {
      return GrpcFnServer.allocatePortAndCreateFor(service, factory);
    }
    Endpoints.ApiServiceDescriptor address =
        Endpoints.ApiServiceDescriptor.newBuilder()
            .setUrl(configuration.host + ":" + port)
            .build();
    return GrpcFnServer.create(service, address, factory);
  }

  protected InMemoryJobService createJobService() throws IOException {
    artifactServer =
        serve(
            new ArtifactStagingService(
                ArtifactStagingService.beamFilesystemArtifactDestinationProvider(
                    configuration.artifactStagingPath)),
            configuration.artifactPort,
            artifactServerFactory);
    LOG.info("ArtifactStagingService started on {}", artifactServer.getApiServiceDescriptor().getUrl());
    expansionServer =
        ExpansionServer.create(new ExpansionService(), configuration.host, configuration.expansionPort);
    LOG.info(
        "Java ExpansionService started on {}:{}", expansionServer.getHost(), expansionServer.getPort());
    GrpcFnServer<ArtifactStagingService> staging = artifactServer;
    return InMemoryJobService.create(
        staging,
        this::createSessionToken,
        token -> {
          if (configuration.cleanArtifactsPerJob) {
            staging.getService().removeStagedArtifacts(token);
          }
        },
        jobInvokerFactory.create(),
        configuration.maxInvocationHistory);
  }

  private GrpcFnServer<InMemoryJobService> createJobServer() throws IOException {
    GrpcFnServer<InMemoryJobService> server =
        serve(createJobService(), configuration.port, jobServerFactory);
    LOG.info("JobService started on {}", server.getApiServiceDescriptor().getUrl());
    return server;
  }

  /** Address of the job service once it is up, else null. */
  public String getJobServerUrl() {
    GrpcFnServer<InMemoryJobService> server = jobServer;
    return server == null ? null : server.getApiServiceDescriptor().getUrl();
  }

  public String start() throws IOException {
    jobServer = createJobServer();
    return jobServer.getApiServiceDescriptor().getUrl();
  }

  @Override
  public void run() {
    try {
      jobServer = createJobServer();
      LOG.info("Job server now running, terminate with Ctrl+C");
      jobServer.getServer().awaitTermination();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      LOG.warn("Job server interrupted", e);
    } catch (Exception e) {
      LOG.error("Job server failed", e);
    } finally {
      stop();
    }
  }

  public synchronized void stop() {
    closeQuietly("JobService", jobServer);
    jobServer = null;
    closeQuietly("ArtifactStagingService", artifactServer);
    artifactServer = null;
    closeQuietly("ExpansionService", expansionServer);
    expansionServer = null;
  }

  private static void closeQuietly(String name, AutoCloseable closeable) {
    if (closeable == null) {
      return;
    }
    try {
      closeable.close();
      LOG.info("{} stopped", name);
    } catch (Exception e) {
      LOG.error("Error while stopping {}", name, e);
    }
  }
}
