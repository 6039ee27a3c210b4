import ArgumentParser
import Foundation
import Logging
import Metrics
import PEMISServer
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `pemis-server`: the PEMIS server. `serve` (the default) runs it; later subcommands (init,
/// audit, check) work on its data directory.
@main
struct PEMISServerCommand: AsyncParsableCommand {
  /// Everything this process creates (registry, shards, logs) is for its owner only: the files
  /// hold children's personal information.
  static func main() async {
    umask(0o077)
    do {
      var command = try parseAsRoot()
      if var command = command as? any AsyncParsableCommand {
        try await command.run()
      } else {
        try command.run()
      }
    } catch {
      exit(withError: error)
    }
  }

  static let configuration = CommandConfiguration(
    commandName: "pemis-server",
    abstract: "The PEMIS server: kindergarten records for Binhai New Area over PEMIS wire.",
    version: "pemis-server \(ServerStatus.version)",
    subcommands: [Serve.self, Init.self, AuditCommand.self, RetentionCommand.self, KeyCommand.self, Check.self, AdminCommand.self, Status.self],
    defaultSubcommand: Serve.self)
}

struct Serve: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    abstract: "Serve PEMIS over PEMIS wire (and, with --http2-port, standard gRPC) until SIGTERM or SIGINT.",
    discussion: """
      Settings come from Config/pemis-server.json (or --config), then PEMIS_* environment \
      variables, then these flags. See docs/CONFIGURATION.md.
      """)

  @OptionGroup var options: ServerOptions

  func run() async throws {
    let configuration: ServerConfiguration
    do {
      configuration = try options.resolve()
    } catch {
      throw ValidationError(error.description)
    }
    let level = configuration.logLevel
    let format = configuration.logFormat
    // Text or JSON lines on standard error, a line repeated too often held back, and each call's
    // request id in the lines written during it (docs/OPERATIONS.md, "Logs").
    LoggingSystem.bootstrap(
      { label, provider in
        var handler = ServerLogHandler(label: label, level: level, format: format)
        handler.metadataProvider = provider
        return handler
      }, metadataProvider: RequestID.metadataProvider)
    let logger = Logger(label: "pemis.server")
    let server: PEMISServer
    do {
      server = try PEMISServer(configuration: configuration, logger: logger, exclusive: true)
    } catch {
      throw ValidationError("cannot open the data directory \(configuration.dataDirectory): \(error)")
    }
    // swift-metrics' global system reports into the server's registry: what a library counts
    // through it appears at /metrics beside the server's own figures.
    MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: server.metrics.registry))
    // Trapped before the first "listening" line, so a SIGHUP sent once it is read never finds
    // the default action (terminate) in place.
    let hangups = await UnixSignalsSequence(trapping: .sighup)
    let group = ServiceGroup(
      configuration: .init(
        // The audit log's service first: shutdown runs last to first, so it writes the entries
        // of the calls the server finishes while draining, then the head, then stops.
        services: [.init(service: server.auditLog), .init(service: server)],
        gracefulShutdownSignals: [.sigterm, .sigint],
        logger: logger))
    try await withThrowingTaskGroup(of: Void.self) { tasks in
      tasks.addTask { try await group.run() }
      tasks.addTask { await Self.reloadOnHangup(hangups, server: server, logger: logger) }
      tasks.addTask {
        var listeners: [String] = []
        // Scripts and tests read this line to learn the port (with --port 0).
        if let address = try? await server.listeningHostAndPort {
          listeners.append("\(address) (PEMIS wire v1)")
          FileHandle.standardOutput.write(Data("pemis-server listening on \(address) (PEMIS wire v1)\n".utf8))
        }
        // Always after the PEMIS wire line, so the first line keeps meaning what it meant.
        if let address = try? await server.http2ListeningHostAndPort {
          listeners.append("\(address) (gRPC over HTTP/2)")
          FileHandle.standardOutput.write(Data("pemis-server listening on \(address) (gRPC over HTTP/2)\n".utf8))
        }
        // And the metrics listener's after both.
        if let address = try? await server.metricsListeningHostAndPort {
          listeners.append("http://\(address)/metrics")
          FileHandle.standardOutput.write(Data("pemis-server listening on \(address) (metrics, http://\(address)/metrics)\n".utf8))
        }
        // For `pemis-server status`.
        let runtime = RuntimeFile(
          pid: getpid(), version: ServerStatus.version, startedAt: Int64(Date().timeIntervalSince1970), listeners: listeners)
        do { try runtime.write(to: configuration.dataDirectory) } catch {
          logger.warning("cannot write \(RuntimeFile.name) for pemis-server status: \(error)")
        }
      }
      // The service group ends the process's life; the SIGHUP watcher would run forever.
      defer { RuntimeFile.remove(from: configuration.dataDirectory) }
      _ = try await tasks.next()
      _ = try await tasks.next()
      tasks.cancelAll()
    }
  }

  /// SIGHUP rereads the working-day calendar folder, then the TLS certificate chain and key
  /// (docs/CONFIGURATION.md, "TLS"). The lines on standard output tell scripts (and tests) what
  /// was reloaded.
  static func reloadOnHangup(_ hangups: UnixSignalsSequence, server: PEMISServer, logger: Logger) async {
    for await _ in hangups {
      // The working-day calendar folder first: a new year's file is how a district gets the
      // next year's holidays without a restart.
      do {
        let (years, filled) = try await server.reloadCalendar()
        let known = years.map { "\($0.lowerBound)–\($0.upperBound)" } ?? "none"
        logger.notice("SIGHUP: working-day calendar reloaded", metadata: ["calendar.years": "\(known)", "calendar.filled": "\(filled)"])
        FileHandle.standardOutput.write(Data("pemis-server reloaded the working-day calendar (years \(known))\n".utf8))
      } catch {
        logger.error("SIGHUP: working-day calendar not reloaded, the old one stays in use: \(error)")
        FileHandle.standardOutput.write(Data("pemis-server kept the old working-day calendar: \(error)\n".utf8))
      }
      do {
        if try server.reloadCertificates() {
          logger.notice("SIGHUP: TLS certificate reloaded")
          FileHandle.standardOutput.write(Data("pemis-server reloaded the TLS certificate\n".utf8))
        } else {
          logger.notice("SIGHUP: TLS is off, nothing to reload")
        }
      } catch {
        logger.error("SIGHUP: TLS certificate not reloaded, the old one stays in use: \(error)")
        FileHandle.standardOutput.write(Data("pemis-server kept the old TLS certificate: \(error)\n".utf8))
      }
    }
  }

}

/// The settings every subcommand shares: where the data is and how it is stored.
struct ServerOptions: ParsableArguments {
  @Option(help: "Configuration file (JSON). Default: Config/pemis-server.json when it exists.")
  var config: String?
  @Option(help: "Address to listen on (PEMIS_HOST).") var host: String?
  @Option(help: "PEMIS wire port; 0 picks a free one (PEMIS_PORT).") var port: Int?
  @Option(
    name: .customLong("http2-port"),
    help: "Also serve standard gRPC over HTTP/2 (plaintext) on this port; 0 picks a free one, off turns it off (PEMIS_HTTP2_PORT).")
  var http2Port: String?
  @Option(name: .customLong("data-dir"), help: "Data directory (PEMIS_DATA_DIR).") var dataDirectory: String?
  @Option(help: "Largest frame payload accepted, in bytes (PEMIS_MAX_FRAME_SIZE).") var maxFrameSize: Int?
  @Option(help: "Calls open at once on one connection (PEMIS_MAX_CONCURRENT_CALLS).") var maxConcurrentCalls: Int?
  @Option(help: "Seconds before an idle connection is closed (PEMIS_IDLE_TIMEOUT).") var idleTimeout: Double?
  @Option(help: "Seconds calls in flight get at shutdown (PEMIS_GRACE_PERIOD).") var gracePeriod: Double?
  @Option(help: "trace|debug|info|notice|warning|error|critical (PEMIS_LOG_LEVEL).") var logLevel: String?
  @Option(help: "Log lines as text or json, one object per line (PEMIS_LOG_FORMAT).") var logFormat: String?
  @Option(help: "Serve the diagnostic Echo service: true or false (PEMIS_DIAGNOSTICS).") var diagnostics: String?
  @Option(help: "SQLite durability: full or normal (PEMIS_DURABILITY).") var durability: String?
  @Option(help: "Shards kept open at once (PEMIS_MAX_OPEN_SHARDS).") var maxOpenShards: Int?
  @Option(help: "log2 of the scrypt cost for passwords, 10-20 (PEMIS_PASSWORD_HASH_COST).") var passwordHashCost: Int?
  @Option(name: .customLong("calendar-dir"), help: "Folder of <year>.json working-day calendars (PEMIS_CALENDAR_DIR).") var calendarDirectory: String?
  @Option(help: "Minutes a transfer may stay mid-step before it is reported stuck (PEMIS_STUCK_TRANSFER_MINUTES).") var stuckTransferMinutes: Int?
  @Option(
    name: .customLong("tls-certificate-chain"),
    help: "PEM certificate chain: both listeners speak TLS, reread on SIGHUP (PEMIS_TLS_CERTIFICATE_CHAIN).")
  var tlsCertificateChainFile: String?
  @Option(name: .customLong("tls-private-key"), help: "PEM private key of the chain (PEMIS_TLS_PRIVATE_KEY).")
  var tlsPrivateKeyFile: String?
  @Flag(help: "Serve plaintext on an address other than loopback (PEMIS_INSECURE).") var insecure = false
  @Option(help: "Address of the /metrics listener, default 127.0.0.1 (PEMIS_METRICS_HOST).") var metricsHost: String?
  @Option(
    help: "Serve Prometheus metrics at /metrics on this port; 0 picks a free one, off turns it off (PEMIS_METRICS_PORT).")
  var metricsPort: String?
  @Option(
    help: "Write the audit chain's head here every minute, outside the data directory, for `audit verify --head` (PEMIS_AUDIT_HEAD_FILE).")
  var auditHeadFile: String?
  @Option(
    help: "The data key file, outside the data directory (default: beside it, <data-dir>.key; PEMIS_DATA_KEY_FILE, or the keys themselves in PEMIS_DATA_KEY).")
  var dataKeyFile: String?

  func resolve() throws(ConfigurationError) -> ServerConfiguration {
    var configuration = try ServerConfiguration.load(file: config)
    let flags: [(String, String?)] = [
      ("host", host), ("port", port.map(String.init)), ("http2Port", http2Port), ("dataDirectory", dataDirectory),
      ("maxFrameSize", maxFrameSize.map(String.init)),
      ("maxConcurrentCallsPerConnection", maxConcurrentCalls.map(String.init)),
      ("idleTimeoutSeconds", idleTimeout.map { String($0) }),
      ("gracePeriodSeconds", gracePeriod.map { String($0) }), ("logLevel", logLevel), ("logFormat", logFormat), ("diagnostics", diagnostics),
      ("durability", durability), ("maxOpenShards", maxOpenShards.map(String.init)),
      ("passwordHashCost", passwordHashCost.map(String.init)), ("calendarDirectory", calendarDirectory),
      ("stuckTransferMinutes", stuckTransferMinutes.map(String.init)),
      ("tlsCertificateChainFile", tlsCertificateChainFile), ("tlsPrivateKeyFile", tlsPrivateKeyFile),
      ("insecure", insecure ? "true" : nil), ("metricsHost", metricsHost), ("metricsPort", metricsPort),
      ("auditHeadFile", auditHeadFile), ("dataKeyFile", dataKeyFile),
    ]
    for case (let key, let value?) in flags {
      try configuration.set(key, text: value, source: "command line")
    }
    try configuration.validate()
    return configuration
  }
}
