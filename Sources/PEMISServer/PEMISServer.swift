internal import Foundation
internal import GRPCCore
public import Logging
public import NIOCore
internal import PEMISWire
internal import PEMISProto
internal import PEMISStore
internal import PEMISRouting
public import ServiceLifecycle

/// The PEMIS server as a ServiceLifecycle `Service`: it prepares the data directory, serves every
/// PEMIS service over PEMIS wire — and, when `http2Port` is set, over standard gRPC on HTTP/2 as
/// well: the same services, interceptors and tenancy — and on graceful shutdown (SIGTERM/SIGINT
/// through the `ServiceGroup`) stops accepting calls on both, lets calls in flight finish within
/// the grace period and returns.
public struct PEMISServer: Service {
  public let configuration: ServerConfiguration
  private let logger: Logger
  private let transport: PEMISWireServerTransport
  /// The optional standard gRPC listener (`http2Port`).
  private let http2: HTTP2Listener?
  private let status: ServerStatus
  private let services: [any RegistrableRPCService]
  /// The registry, the shards and what the tenancy services share.
  public let tenancy: Tenancy
  /// The TLS certificate both listeners present, when TLS is on.
  private let certificates: ServerCertificates?
  /// The server's figures; `/metrics` (``metricsListener``) renders them.
  public let metrics: ServerMetrics
  /// The optional `/metrics` listener (`metricsPort`).
  private let metricsListener: MetricsListener?
  /// The audit log's writer and head keeper: a service of its own, run beside this one and
  /// stopped after it (`pemis-server` puts both in one service group).
  public let auditLog: AuditLogService
  /// Held by a serving process for its life (``DataDirectoryLock``); nil for the
  /// administration commands and tests, which run beside a server.
  private let dataDirectoryLock: DataDirectoryLock?

  /// Opens (creating if needed) the data directory's registry and shards folder.
  /// - Parameters:
  ///   - now: seconds since 1970; tests pass a clock they can move.
  ///   - exclusive: take the data directory's lock first (`serve`): another server holding it
  ///     stops this one before anything is opened or written.
  public init(
    configuration: ServerConfiguration, logger: Logger, now: @escaping @Sendable () -> Int64 = Tenancy.systemClock,
    exclusive: Bool = false
  ) throws {
    self.configuration = configuration
    self.logger = logger
    try configuration.validateExposure()
    let certificates = try configuration.tlsCertificateChainFile.flatMap { chain in
      try configuration.tlsPrivateKeyFile.map { key in try ServerCertificates(chainFile: chain, keyFile: key) }
    }
    self.certificates = certificates
    try Self.prepareDataDirectory(configuration.dataDirectory)
    dataDirectoryLock = exclusive ? try DataDirectoryLock(directory: configuration.dataDirectory) : nil
    let calendar = try CalendarFiles.load(directory: configuration.calendarDirectory)
    // Recorded only when someone can read them (metricsPort set): then each call and commit pays
    // for its figures (docs/PERFORMANCE.md, "Metrics").
    let metrics = ServerMetrics(
      listeners: ["wire"] + (configuration.http2Port == nil ? [] : ["http2"]), version: ServerStatus.version,
      startedAt: Tenancy.systemClock(), recording: configuration.metricsPort != nil)
    self.metrics = metrics
    let keys = try configuration.loadDataKeys()
    // A key file that cannot be re-read (a bad edit, a permission change) does not stop sealing;
    // the operator learns of it here, once per problem.
    keys.onProblem { [logger] message in logger.warning("\(message)") }
    let tenancy = try Tenancy(
      dataDirectory: configuration.dataDirectory, keys: keys, store: configuration.storeConfiguration,
      passwordCostLog2: configuration.passwordHashCost, calendar: calendar, logger: logger, now: now,
      stuckTransferSeconds: Int64(configuration.stuckTransferMinutes) * 60, metrics: metrics)
    self.tenancy = tenancy
    auditLog = AuditLogService(
      registry: tenancy.registry, headFile: configuration.auditHeadFile, interval: .seconds(configuration.auditHeadIntervalSeconds),
      logger: logger)
    var services: [any RegistrableRPCService] = [
      SessionService(tenancy: tenancy), AccountsService(tenancy: tenancy), OnboardingService(tenancy: tenancy),
      KindergartensService(tenancy: tenancy), AuditService(tenancy: tenancy), DeadlinesService(tenancy: tenancy),
      KindergartenDataService(tenancy: tenancy), ChildRecordsService(tenancy: tenancy), TransfersService(tenancy: tenancy),
      DuplicatesService(tenancy: tenancy), DistrictService(tenancy: tenancy), ExportsService(tenancy: tenancy),
    ]
    var names: Set<String> = [
      Pemis_V1_Health.descriptor.fullyQualifiedService, Pemis_V1_Session.descriptor.fullyQualifiedService,
      Pemis_V1_Accounts.descriptor.fullyQualifiedService, Pemis_V1_Onboarding.descriptor.fullyQualifiedService,
      Pemis_V1_Kindergartens.descriptor.fullyQualifiedService, Pemis_V1_Audit.descriptor.fullyQualifiedService,
      Pemis_V1_Deadlines.descriptor.fullyQualifiedService, Pemis_V1_KindergartenData.descriptor.fullyQualifiedService,
      Pemis_V1_ChildRecords.descriptor.fullyQualifiedService, Pemis_V1_Transfers.descriptor.fullyQualifiedService,
      Pemis_V1_Duplicates.descriptor.fullyQualifiedService, Pemis_V1_District.descriptor.fullyQualifiedService,
      Pemis_V1_Exports.descriptor.fullyQualifiedService,
    ]
    if configuration.diagnostics {
      services.append(EchoService())
      names.insert(Pemis_V1_Echo.descriptor.fullyQualifiedService)
    }
    let status = ServerStatus(services: names)
    services.insert(HealthService(status: status), at: 0)
    self.status = status
    self.services = services
    var wireConfig = PEMISWireServerTransport.Config(
      limits: WireLimits(
        maxFrameSize: configuration.maxFrameSize,
        maxConcurrentStreams: configuration.maxConcurrentCallsPerConnection),
      idleTimeout: .milliseconds(Int64(configuration.idleTimeoutSeconds * 1000)),
      handshakeTimeout: .seconds(10),
      gracePeriod: .milliseconds(Int64(configuration.gracePeriodSeconds * 1000)))
    // Resource governance (docs/CONFIGURATION.md, "Connections and memory").
    wireConfig.maxConnections = configuration.maxConnections
    wireConfig.maxConnectionsPerAddress = configuration.maxConnectionsPerAddress
    wireConfig.memoryBudgetBytes = configuration.wireMemoryBudgetBytes
    wireConfig.memoryLimitBytes = configuration.memoryLimitBytes > 0 ? configuration.memoryLimitBytes : nil
    wireConfig.halfCloseTimeout = .milliseconds(Int64(configuration.halfCloseTimeoutSeconds * 1000))
    wireConfig.unreadResponseTimeout = .milliseconds(Int64(configuration.unreadResponseTimeoutSeconds * 1000))
    wireConfig.tls = try certificates?.wireContext()
    self.transport = PEMISWireServerTransport(
      host: configuration.host, port: configuration.port, config: wireConfig, logger: logger)
    self.http2 = try configuration.http2Port.map { port in
      try HTTP2Listener(host: configuration.host, port: port, configuration: configuration, certificates: certificates)
    }
    let transport = self.transport
    self.metricsListener = configuration.metricsPort.map { port in
      MetricsListener(host: configuration.metricsHost, port: port) {
        await Self.scrape(metrics: metrics, tenancy: tenancy, wire: transport, certificates: certificates)
      }
    }
  }

  /// One scrape: the registry's counts (one read), the pool's, the audit log's, the wire's,
  /// the certificate's expiry, then every metric rendered. A registry that cannot be read still
  /// gets an answer, saying so (`pemis_registry_unreadable`), so the alert is about the registry
  /// rather than a missing scrape.
  static func scrape(
    metrics: ServerMetrics, tenancy: Tenancy, wire: PEMISWireServerTransport, certificates: ServerCertificates?
  ) async -> [UInt8] {
    let registryState = try? await tenancy.registry.operationalState(now: tenancy.now(), today: tenancy.today)
    return metrics.render(
      ServerMetrics.State(
        registry: registryState, shards: tenancy.shards.statistics,
        audit: tenancy.registry.auditStatistics, wire: wire.statistics, certificateNotValidAfter: certificates?.notValidAfter))
  }

  /// "127.0.0.1:7402": where Prometheus scrapes `/metrics`, once listening; nil when off.
  public var metricsListeningHostAndPort: String? {
    get async throws {
      guard let metricsListener else { return nil }
      return Self.hostAndPort(try await metricsListener.listeningAddress, host: configuration.metricsHost)
    }
  }

  /// Rereads the TLS certificate chain and key (SIGHUP): new connections on both listeners get
  /// the new certificate, open ones keep theirs. Returns false when TLS is off; throws, keeping
  /// the old certificate, when the files cannot be used.
  public func reloadCertificates() throws(ConfigurationError) -> Bool {
    guard let certificates else { return false }
    try certificates.reload()
    return true
  }

  /// Rereads the working-day calendar folder (`calendarDirectory`, SIGHUP); throws, keeping the
  /// old calendar, when the folder cannot be used.
  public func reloadCalendar() async throws -> (years: ClosedRange<Int>?, filled: Int) {
    try await tenancy.reloadCalendar(directory: configuration.calendarDirectory)
  }

  /// The address the server listens on, once it is listening (useful with port 0).
  public var listeningAddress: SocketAddress {
    get async throws { try await transport.listeningAddress }
  }

  /// "127.0.0.1:7400": where clients reach the server, once it is listening.
  public var listeningHostAndPort: String {
    get async throws {
      Self.hostAndPort(try await transport.listeningAddress, host: configuration.host)
    }
  }

  /// "127.0.0.1:7400", "[::1]:7400": a bound address as clients write it (`host` when the
  /// address has no IP, e.g. a Unix socket).
  static func hostAndPort(_ address: SocketAddress, host: String) -> String {
    let host = address.ipAddress ?? host
    return host.contains(":") ? "[\(host)]:\(address.port ?? 0)" : "\(host):\(address.port ?? 0)"
  }

  /// "127.0.0.1:7401": where standard gRPC (HTTP/2) clients reach the server, once it is
  /// listening; nil when the HTTP/2 listener is off (`http2Port` not set).
  public var http2ListeningHostAndPort: String? {
    get async throws { try await http2?.listeningHostAndPort }
  }

  public func run() async throws {
    let filled = try await tenancy.registry.fillMissingDueDates(tenancy.calendar)
    if filled > 0 { logger.info("computed \(filled) due dates that waited for a calendar year") }
    try await tenancy.openMonthlyAudits()
    try await tenancy.prepareRouting()
    try await tenancy.prepareLogins()
    // One interceptor instance, one set of services, one tenancy: both listeners are the same
    // server to a caller, down to the audit log.
    // Each listener counts its own calls (outermost, so a refused call counts with its status).
    let access = AccessControlInterceptor(tenancy: tenancy)
    func interceptors(_ listener: String) -> [any ServerInterceptor] {
      metrics.recording ? [MetricsInterceptor(metrics: metrics, listener: listener), access] : [access]
    }
    let wire = GRPCServer(transport: transport, services: services, interceptors: interceptors("wire"))
    let standard = http2?.server(services: services, interceptors: interceptors("http2"))
    logger.info(
      "pemis-server starting",
      metadata: [
        "server.version": "\(ServerStatus.version)", "server.data": "\(configuration.dataDirectory)",
        "server.diagnostics": "\(configuration.diagnostics)", "server.tls": "\(configuration.tlsEnabled)",
        "server.http2": "\(configuration.http2Port.map(String.init) ?? "off")",
        "server.metrics": "\(configuration.metricsPort.map { "\(configuration.metricsHost):\($0)" } ?? "off")",
      ])
    try await withGracefulShutdownHandler {
      try await withThrowingTaskGroup(of: Void.self) { group in
        // Recovery again now and then: a step that failed (a shard briefly unavailable) is
        // retried without waiting for the next start.
        let retentionYears = configuration.retentionYears
        group.addTask { [tenancy, logger] in
          while !Task.isCancelled {
            try? await Task.sleep(for: .seconds(60))
            if Task.isCancelled { break }
            do { try await tenancy.recoverTransfers() } catch { logger.error("periodic recovery failed", metadata: ["error": "\(error)"]) }
            await tenancy.pruneLogins()
            await tenancy.scrubRetentionIfDue(years: retentionYears)
            _ = try? await tenancy.registry.expireExports(at: tenancy.now())
          }
        }
        // Either listener failing (a port in use) stops the other: the server runs whole or not.
        try await withThrowingTaskGroup(of: Void.self) { listeners in
          listeners.addTask { try await wire.serve() }
          if let http2, let standard { listeners.addTask { try await http2.serve(standard) } }
          if let metricsListener { listeners.addTask { try await metricsListener.serve() } }
          // Not waitForAll(): it would wait for the other listener before rethrowing. Leaving the
          // group by throwing cancels the other one.
          while try await listeners.next() != nil {}
        }
        group.cancelAll()
      }
    } onGracefulShutdown: { [status, logger, metricsListener] in
      logger.info("graceful shutdown: finishing calls in flight")
      status.beginDraining()
      metricsListener?.stop()
      // Both drain at once within the same grace period (the HTTP/2 transport's maxGraceTime).
      wire.beginGracefulShutdown()
      standard?.beginGracefulShutdown()
    }
    logger.info("pemis-server stopped")
  }

  /// Creates the data directory (owner-only: it will hold children's records) or checks that an
  /// existing one is a writable directory.
  static func prepareDataDirectory(_ path: String) throws {
    let manager = FileManager.default
    var isDirectory: ObjCBool = false
    if manager.fileExists(atPath: path, isDirectory: &isDirectory) {
      guard isDirectory.boolValue else {
        throw ConfigurationError(key: "dataDirectory", message: "\(path) exists and is not a directory")
      }
      guard manager.isWritableFile(atPath: path) else {
        throw ConfigurationError(key: "dataDirectory", message: "\(path) is not writable by this user")
      }
    } else {
      do {
        try manager.createDirectory(
          atPath: path, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
      } catch {
        throw ConfigurationError(key: "dataDirectory", message: "\(path) cannot be created: \(error.localizedDescription)")
      }
    }
  }
}
