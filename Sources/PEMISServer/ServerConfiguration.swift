internal import Foundation
public import Logging
public import PEMISStore

/// Everything `pemis-server` can be told. Values are those of ``defaults``; ``load(file:environment:)``
/// reads them from `Config/pemis-server.json` and `PEMIS_*` environment variables, and the command
/// line goes on top (docs/CONFIGURATION.md).
public struct ServerConfiguration: Sendable, Equatable {
  /// Address to listen on. Default "127.0.0.1": serving the district network is a decision the
  /// operator makes by setting "0.0.0.0" or an interface address.
  public var host: String
  /// PEMIS wire port. Default 7400; 0 picks a free port (tests).
  public var port: Int
  /// Port of the optional second listener, standard gRPC over HTTP/2 (plaintext) on the same
  /// host, serving the same services behind the same access control. Default nil: off. 0 picks a
  /// free port (tests).
  public var http2Port: Int?
  /// Where the registry and the kindergarten shards live. Default "./data".
  public var dataDirectory: String
  /// Largest frame payload accepted, in bytes. Default 4 MiB.
  public var maxFrameSize: Int
  /// Calls open at once on one connection. Default 100.
  public var maxConcurrentCallsPerConnection: Int
  /// Seconds a connection may go without a call before it is closed. Default 300.
  public var idleTimeoutSeconds: Double
  /// Seconds calls in flight get to finish after SIGTERM/SIGINT. Default 10.
  public var gracePeriodSeconds: Double
  /// trace, debug, info, notice, warning, error or critical. Default info.
  public var logLevel: Logger.Level
  /// How log lines are written: text (default) or json, one object per line for a collector.
  public var logFormat: ServerLogHandler.Format = .text
  /// Whether the diagnostic Echo service is served. Default false: Echo needs no session, so it
  /// is for tests and benchmarks (`pemis-load`), turned on explicitly.
  public var diagnostics: Bool
  /// SQLite `synchronous`: "full" (default) survives power loss after each commit; "normal" is
  /// faster and survives a crash of the process.
  public var durability: StoreConfiguration.Durability
  /// Kindergarten shards kept open at once (least recently used closes first). Default 256.
  public var maxOpenShards: Int
  /// log2 of scrypt's cost for password hashes. Default 15; lower only for tests and benchmarks.
  public var passwordHashCost: Int
  /// Folder of `<year>.json` working-day calendars (docs/CALENDAR.md). Default "Config/calendar".
  public var calendarDirectory: String
  /// Minutes a transfer may stay mid-step (requested, accepting, cancelling, declining, aborting)
  /// before `pemis-server check` reports it stuck and recovery warns in the log. Default 10: a
  /// step takes milliseconds, and recovery retries every minute.
  public var stuckTransferMinutes: Int = 10
  /// PEMIS wire connections open at once, server-wide. Default 16384, lowered at start to fit the
  /// process's descriptor limit (less 1024 kept free).
  public var maxConnections: Int = 16_384
  /// PEMIS wire connections open at once from one IP address. Default 512.
  public var maxConnectionsPerAddress: Int = 512
  /// Bytes of requests and responses all PEMIS wire connections together may hold. Default
  /// 67108864 (64 MiB): the process holds two to three times that for them (decoded copies,
  /// buffers rounded up, the handlers' state), which leaves room under `memoryLimitBytes` for
  /// thousands of idle connections.
  public var wireMemoryBudgetBytes: Int = 64 * 1024 * 1024
  /// The server's resident memory (RSS) it keeps under: from 7/8 of it the PEMIS wire refuses
  /// new connections, and requests from connections that hold memory, until it falls. Default
  /// 469762048 (448 MiB); 0: not watched.
  public var memoryLimitBytes: Int = 448 * 1024 * 1024
  /// Seconds within which a call must finish sending its request (CLOSE_SEND). Default 300.
  public var halfCloseTimeoutSeconds: Double = 300
  /// Seconds a connection may leave its answers unread before it is closed. Default 30.
  public var unreadResponseTimeoutSeconds: Double = 30

  // TLS (docs/CONFIGURATION.md, "TLS"). Both files set: both listeners speak TLS only, and SIGHUP
  // rereads the files (new connections get the new certificate, open ones keep theirs).
  /// PEM file of the server's certificate chain, leaf first. Default nil: plaintext.
  public var tlsCertificateChainFile: String? = nil
  /// PEM file of the private key of the chain's leaf. Default nil.
  public var tlsPrivateKeyFile: String? = nil
  /// Serve plaintext on an address other than loopback. Default false: without TLS the server
  /// listens on loopback only, where passwords and tokens never cross a network.
  public var insecure: Bool = false

  // Metrics (docs/OPERATIONS.md, "Metrics").
  /// Address of the `/metrics` listener. Default "127.0.0.1": the figures stay on the machine
  /// unless the operator names the monitoring network's interface.
  public var metricsHost: String = "127.0.0.1"
  /// Port of the `/metrics` listener (plain HTTP, for Prometheus). Default nil: off. 0 picks a
  /// free port (tests).
  public var metricsPort: Int? = nil

  // The audit log (docs/TENANCY.md, "Audit log").
  /// Where the audit chain's head (last sequence number and hash) is written on a schedule, so
  /// that entries cut off the end are found (`pemis-server audit verify --head FILE`). Must be
  /// outside the data directory: a copy cut together with the log proves nothing. Default nil:
  /// not written.
  public var auditHeadFile: String? = nil
  /// How often the head is written (and once more at shutdown). Default 60 s.
  public var auditHeadIntervalSeconds: Double = 60
  /// Entries younger than this many months are never pruned; at least 6 (Cybersecurity Law
  /// Art. 21). Default 6.
  public var auditRetentionMonths: Int = 6

  /// Children who left more than this many years ago have guardian contacts, health and
  /// household details scrubbed, once a day (docs/TENANCY.md, "Retention"). Default 3.
  public var retentionYears: Int = 3

  // Encryption at rest (docs/OPERATIONS.md, "Encryption at rest").
  /// The data key file: the keys that seal ID numbers, health and guardians' phones, and make
  /// the searchable keys. Must be outside the data directory. Default nil: beside it, the data
  /// directory's path with `.key` (`./data.key`), created with new keys for a new data directory.
  public var dataKeyFile: String? = nil
  /// The keys' text from `PEMIS_DATA_KEY`, which then takes the file's place. Never logged.
  public var dataKey: String? = nil

  /// ``dataKeyFile``, or its default beside the data directory.
  public var resolvedDataKeyFile: String { dataKeyFile ?? DataKeys.defaultFile(forDataDirectory: dataDirectory) }

  /// Whether both TLS files are set.
  public var tlsEnabled: Bool { tlsCertificateChainFile != nil && tlsPrivateKeyFile != nil }

  /// "localhost", 127.0.0.0/8 or ::1: addresses no other host can reach.
  public static func isLoopback(_ host: String) -> Bool {
    let host = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
    if host.lowercased() == "localhost" || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
    let parts = host.split(separator: ".", omittingEmptySubsequences: false)
    return parts.count == 4 && parts[0] == "127" && parts.allSatisfy { part in Int(part).map { (0...255).contains($0) } ?? false }
  }

  public static var defaults: Self {
    Self(
      host: "127.0.0.1", port: 7400, dataDirectory: "./data", maxFrameSize: 4 * 1024 * 1024,
      maxConcurrentCallsPerConnection: 100, idleTimeoutSeconds: 300, gracePeriodSeconds: 10,
      logLevel: .info, diagnostics: false, durability: .full, maxOpenShards: 256, passwordHashCost: 15,
      calendarDirectory: "Config/calendar", http2Port: nil)
  }

  public init(
    host: String, port: Int, dataDirectory: String, maxFrameSize: Int,
    maxConcurrentCallsPerConnection: Int, idleTimeoutSeconds: Double, gracePeriodSeconds: Double,
    logLevel: Logger.Level, diagnostics: Bool, durability: StoreConfiguration.Durability, maxOpenShards: Int,
    passwordHashCost: Int, calendarDirectory: String, http2Port: Int? = nil
  ) {
    self.host = host
    self.port = port
    self.dataDirectory = dataDirectory
    self.maxFrameSize = maxFrameSize
    self.maxConcurrentCallsPerConnection = maxConcurrentCallsPerConnection
    self.idleTimeoutSeconds = idleTimeoutSeconds
    self.gracePeriodSeconds = gracePeriodSeconds
    self.logLevel = logLevel
    self.diagnostics = diagnostics
    self.durability = durability
    self.maxOpenShards = maxOpenShards
    self.passwordHashCost = passwordHashCost
    self.calendarDirectory = calendarDirectory
    self.http2Port = http2Port
  }

  var storeConfiguration: StoreConfiguration {
    StoreConfiguration(durability: durability, maxOpenShards: maxOpenShards)
  }

  /// Checks every value, naming the setting and the rule it breaks.
  public func validate() throws(ConfigurationError) {
    func check(_ ok: Bool, _ key: String, _ rule: String) throws(ConfigurationError) {
      if !ok { throw ConfigurationError(key: key, message: rule) }
    }
    try check(!host.isEmpty, "host", "must not be empty")
    try check((0...65535).contains(port), "port", "must be between 0 and 65535, got \(port)")
    if let http2Port {
      try check((0...65535).contains(http2Port), "http2Port", "must be between 0 and 65535 (or off), got \(http2Port)")
      try check(
        http2Port == 0 || http2Port != port, "http2Port",
        "must differ from port (\(port)): PEMIS wire and HTTP/2 cannot share one port")
    }
    if let metricsPort {
      try check((0...65535).contains(metricsPort), "metricsPort", "must be between 0 and 65535 (or off), got \(metricsPort)")
      try check(
        metricsPort == 0 || (metricsPort != port && metricsPort != http2Port) || metricsHost != host, "metricsPort",
        "must differ from port and http2Port on the same host: each listener needs its own port")
      try check(!metricsHost.isEmpty, "metricsHost", "must not be empty")
    }
    try check(!dataDirectory.isEmpty, "dataDirectory", "must not be empty")
    try check(
      (1024...(64 * 1024 * 1024)).contains(maxFrameSize), "maxFrameSize",
      "must be between 1024 and 67108864 bytes, got \(maxFrameSize)")
    try check(
      (1...10_000).contains(maxConcurrentCallsPerConnection), "maxConcurrentCallsPerConnection",
      "must be between 1 and 10000, got \(maxConcurrentCallsPerConnection)")
    try check(idleTimeoutSeconds > 0, "idleTimeoutSeconds", "must be above 0, got \(idleTimeoutSeconds)")
    try check(gracePeriodSeconds >= 0, "gracePeriodSeconds", "must not be negative, got \(gracePeriodSeconds)")
    try check((1...10_080).contains(stuckTransferMinutes), "stuckTransferMinutes", "must be between 1 and 10080 (a week), got \(stuckTransferMinutes)")
    try check((1...1_000_000).contains(maxConnections), "maxConnections", "must be between 1 and 1000000, got \(maxConnections)")
    try check(
      (1...1_000_000).contains(maxConnectionsPerAddress), "maxConnectionsPerAddress",
      "must be between 1 and 1000000, got \(maxConnectionsPerAddress)")
    try check(
      wireMemoryBudgetBytes >= 4 * maxFrameSize, "wireMemoryBudgetBytes",
      "must be at least 4 × maxFrameSize (\(4 * maxFrameSize) bytes), got \(wireMemoryBudgetBytes)")
    try check(
      memoryLimitBytes == 0 || memoryLimitBytes >= 64 * 1024 * 1024, "memoryLimitBytes",
      "must be 0 (not watched) or at least 67108864 (64 MiB: the server needs about 50 MB for itself), got \(memoryLimitBytes)")
    try check(halfCloseTimeoutSeconds > 0, "halfCloseTimeoutSeconds", "must be above 0, got \(halfCloseTimeoutSeconds)")
    try check(
      unreadResponseTimeoutSeconds > 0, "unreadResponseTimeoutSeconds", "must be above 0, got \(unreadResponseTimeoutSeconds)")
    try check((1...100_000).contains(maxOpenShards), "maxOpenShards", "must be between 1 and 100000, got \(maxOpenShards)")
    try check((10...20).contains(passwordHashCost), "passwordHashCost", "must be between 10 and 20, got \(passwordHashCost)")
    try check(
      (6...1200).contains(auditRetentionMonths), "auditRetentionMonths",
      "must be at least 6 (network logs are kept six months, Cybersecurity Law Art. 21) and at most 1200, got \(auditRetentionMonths)")
    try check((1...50).contains(retentionYears), "retentionYears", "must be between 1 and 50 years, got \(retentionYears)")
    try check(
      (1...86_400).contains(auditHeadIntervalSeconds), "auditHeadIntervalSeconds", "must be between 1 and 86400, got \(auditHeadIntervalSeconds)")
    if let auditHeadFile {
      try check(
        Self.isOutside(auditHeadFile, dataDirectory), "auditHeadFile",
        "must be outside the data directory (\(dataDirectory)): a head kept with the log is cut off with it")
    }
    try check(
      Self.isOutside(resolvedDataKeyFile, dataDirectory), "dataKeyFile",
      "must be outside the data directory (\(dataDirectory)): a key kept with the data opens it for whoever copies the data")
    try validateExposure()
  }
}

extension ServerConfiguration {
  /// Whether `file` is outside `directory` (symbolic links resolved).
  static func isOutside(_ file: String, _ directory: String) -> Bool {
    let file = URL(fileURLWithPath: file).standardizedFileURL.resolvingSymlinksInPath().path
    let data = URL(fileURLWithPath: directory).standardizedFileURL.resolvingSymlinksInPath().path
    return file != data && !file.hasPrefix(data.hasSuffix("/") ? data : data + "/")
  }

  /// The data keys for this configuration: `PEMIS_DATA_KEY`, or the key file. A new data
  /// directory (or one from before encryption) gets a new key file; an existing one whose key
  /// is missing or wrong stops here with a message that says so.
  public func loadDataKeys() throws -> DataKeys {
    try DataKeys.forDataDirectory(dataDirectory, file: resolvedDataKeyFile, environment: dataKey)
  }

  /// TLS needs both files, and without TLS only loopback is served unless `insecure` says
  /// otherwise. ``PEMISServer`` checks this too, so no way of starting a server skips it.
  public func validateExposure() throws(ConfigurationError) {
    try Self.require(
      (tlsCertificateChainFile == nil) == (tlsPrivateKeyFile == nil),
      tlsCertificateChainFile == nil ? "tlsCertificateChainFile" : "tlsPrivateKeyFile",
      "must be set too: TLS needs both the certificate chain and its private key")
    try Self.require(
      tlsEnabled || insecure || Self.isLoopback(host), "host",
      "is \(host), which other hosts can reach, and TLS is off: passwords and session tokens would cross the "
        + "network in cleartext. Set tlsCertificateChainFile and tlsPrivateKeyFile (--tls-certificate-chain, "
        + "--tls-private-key), or pass --insecure (PEMIS_INSECURE=true) to serve plaintext anyway")
  }

  private static func require(_ ok: Bool, _ key: String, _ rule: String) throws(ConfigurationError) {
    if !ok { throw ConfigurationError(key: key, message: rule) }
  }
}

/// A configuration value that cannot be used, with where it came from.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
  public var key: String
  public var message: String
  public var source: String?

  public init(key: String, message: String, source: String? = nil) {
    self.key = key
    self.message = message
    self.source = source
  }

  public var description: String {
    "configuration: \(key) \(message)" + (source.map { " (from \($0))" } ?? "")
  }
}
