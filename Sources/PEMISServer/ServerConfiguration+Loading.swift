internal import Foundation
internal import Logging
internal import PEMISStore

extension ServerConfiguration {
  /// The JSON keys of the configuration file, each with its environment variable.
  static let settings: [(key: String, environment: String)] = [
    ("host", "PEMIS_HOST"),
    ("port", "PEMIS_PORT"),
    ("http2Port", "PEMIS_HTTP2_PORT"),
    ("dataDirectory", "PEMIS_DATA_DIR"),
    ("maxFrameSize", "PEMIS_MAX_FRAME_SIZE"),
    ("maxConcurrentCallsPerConnection", "PEMIS_MAX_CONCURRENT_CALLS"),
    ("idleTimeoutSeconds", "PEMIS_IDLE_TIMEOUT"),
    ("gracePeriodSeconds", "PEMIS_GRACE_PERIOD"),
    ("logLevel", "PEMIS_LOG_LEVEL"),
    ("logFormat", "PEMIS_LOG_FORMAT"),
    ("diagnostics", "PEMIS_DIAGNOSTICS"),
    ("durability", "PEMIS_DURABILITY"),
    ("maxOpenShards", "PEMIS_MAX_OPEN_SHARDS"),
    ("passwordHashCost", "PEMIS_PASSWORD_HASH_COST"),
    ("calendarDirectory", "PEMIS_CALENDAR_DIR"),
    ("stuckTransferMinutes", "PEMIS_STUCK_TRANSFER_MINUTES"),
    ("maxConnections", "PEMIS_MAX_CONNECTIONS"),
    ("maxConnectionsPerAddress", "PEMIS_MAX_CONNECTIONS_PER_ADDRESS"),
    ("wireMemoryBudgetBytes", "PEMIS_WIRE_MEMORY_BUDGET"),
    ("memoryLimitBytes", "PEMIS_MEMORY_LIMIT"),
    ("halfCloseTimeoutSeconds", "PEMIS_HALF_CLOSE_TIMEOUT"),
    ("unreadResponseTimeoutSeconds", "PEMIS_UNREAD_RESPONSE_TIMEOUT"),
    ("tlsCertificateChainFile", "PEMIS_TLS_CERTIFICATE_CHAIN"),
    ("tlsPrivateKeyFile", "PEMIS_TLS_PRIVATE_KEY"),
    ("insecure", "PEMIS_INSECURE"),
    ("metricsHost", "PEMIS_METRICS_HOST"),
    ("metricsPort", "PEMIS_METRICS_PORT"),
    ("auditHeadFile", "PEMIS_AUDIT_HEAD_FILE"),
    ("auditHeadIntervalSeconds", "PEMIS_AUDIT_HEAD_INTERVAL"),
    ("auditRetentionMonths", "PEMIS_AUDIT_RETENTION_MONTHS"),
    ("retentionYears", "PEMIS_RETENTION_YEARS"),
    ("dataKeyFile", "PEMIS_DATA_KEY_FILE"),
  ]

  /// The keys' text itself, instead of a file: only from the environment, never from a file
  /// kept with the configuration.
  static let dataKeyVariable = "PEMIS_DATA_KEY"

  /// ``load(file:environment:)`` with this process's environment.
  public static func load(file: String?) throws(ConfigurationError) -> ServerConfiguration {
    try load(file: file, environment: ProcessInfo.processInfo.environment)
  }

  /// The default configuration file, relative to the working directory.
  public static let defaultFile = "Config/pemis-server.json"

  /// Defaults, then the file (if it exists, or if it was named explicitly), then the environment.
  /// - Parameters:
  ///   - file: A path given by the operator (must exist), or nil for ``defaultFile`` (optional).
  public static func load(
    file: String?, environment: [String: String]
  ) throws(ConfigurationError) -> ServerConfiguration {
    var configuration = ServerConfiguration.defaults
    let path = file ?? defaultFile
    if FileManager.default.fileExists(atPath: path) {
      try configuration.apply(file: path)
    } else if file != nil {
      throw ConfigurationError(key: "--config", message: "file \(path) does not exist")
    }
    for (key, variable) in settings {
      if let value = environment[variable] {
        try configuration.set(key, text: value, source: "environment variable \(variable)")
      }
    }
    configuration.dataKey = environment[dataKeyVariable].flatMap { $0.isEmpty ? nil : $0 }
    return configuration
  }

  mutating func apply(file path: String) throws(ConfigurationError) {
    let values: [String: FileValue]
    do {
      let data = try Data(contentsOf: URL(fileURLWithPath: path))
      values = try JSONDecoder().decode([String: FileValue].self, from: data)
    } catch {
      throw ConfigurationError(
        key: "file", message: "must hold one JSON object of strings, numbers and booleans (\(error))", source: path)
    }
    let known = Set(Self.settings.map(\.key))
    for (key, value) in values.sorted(by: { $0.key < $1.key }) {
      // Keys starting with "_" are comments.
      if key.hasPrefix("_") { continue }
      guard known.contains(key) else {
        throw ConfigurationError(
          key: key, message: "is not a setting (known: \(Self.settings.map(\.key).joined(separator: ", ")))",
          source: path)
      }
      try set(key, text: value.text, source: path)
    }
  }

  /// One value of the configuration file, kept as the text it would have on the command line.
  struct FileValue: Decodable {
    var text: String

    init(from decoder: any Decoder) throws {
      let container = try decoder.singleValueContainer()
      if let bool = try? container.decode(Bool.self) {
        text = bool ? "true" : "false"
      } else if let int = try? container.decode(Int.self) {
        text = String(int)
      } else if let double = try? container.decode(Double.self) {
        text = String(double)
      } else {
        text = try container.decode(String.self)
      }
    }
  }

  /// Sets one setting from text (a file value, an environment variable or a flag).
  public mutating func set(_ key: String, text: String, source: String) throws(ConfigurationError) {
    func integer() throws(ConfigurationError) -> Int {
      guard let value = Int(text.trimmingCharacters(in: .whitespaces)) else {
        throw ConfigurationError(key: key, message: "must be a whole number, got '\(text)'", source: source)
      }
      return value
    }
    func seconds() throws(ConfigurationError) -> Double {
      guard let value = Double(text.trimmingCharacters(in: .whitespaces)), value.isFinite else {
        throw ConfigurationError(key: key, message: "must be a number of seconds, got '\(text)'", source: source)
      }
      return value
    }
    // "off" (or an empty value) turns an optional listener off again, e.g. over a file's port.
    func portOrOff() throws(ConfigurationError) -> Int? {
      let trimmed = text.trimmingCharacters(in: .whitespaces).lowercased()
      if trimmed == "off" || trimmed.isEmpty { return nil }
      guard let value = Int(trimmed) else {
        throw ConfigurationError(key: key, message: "must be a whole number or off, got '\(text)'", source: source)
      }
      return value
    }
    func boolean() throws(ConfigurationError) -> Bool {
      switch text.lowercased() {
      case "true", "1", "yes", "on": return true
      case "false", "0", "no", "off": return false
      default: throw ConfigurationError(key: key, message: "must be true or false, got '\(text)'", source: source)
      }
    }
    switch key {
    case "host": host = text
    case "port": port = try integer()
    case "http2Port": http2Port = try portOrOff()
    case "metricsHost": metricsHost = text
    case "metricsPort": metricsPort = try portOrOff()
    case "dataDirectory": dataDirectory = text
    case "maxFrameSize": maxFrameSize = try integer()
    case "maxConcurrentCallsPerConnection": maxConcurrentCallsPerConnection = try integer()
    case "idleTimeoutSeconds": idleTimeoutSeconds = try seconds()
    case "gracePeriodSeconds": gracePeriodSeconds = try seconds()
    case "logFormat":
      guard let format = ServerLogHandler.Format(rawValue: text.lowercased()) else {
        throw ConfigurationError(key: key, message: "must be text or json, got '\(text)'", source: source)
      }
      logFormat = format
    case "logLevel":
      guard let level = Logger.Level(rawValue: text.lowercased()) else {
        throw ConfigurationError(
          key: key, message: "must be one of trace, debug, info, notice, warning, error, critical; got '\(text)'",
          source: source)
      }
      logLevel = level
    case "diagnostics": diagnostics = try boolean()
    case "insecure": insecure = try boolean()
    case "tlsCertificateChainFile": tlsCertificateChainFile = text.isEmpty ? nil : text
    case "tlsPrivateKeyFile": tlsPrivateKeyFile = text.isEmpty ? nil : text
    case "durability":
      guard let value = StoreConfiguration.Durability(rawValue: text.lowercased()) else {
        throw ConfigurationError(key: key, message: "must be full or normal, got '\(text)'", source: source)
      }
      durability = value
    case "maxOpenShards": maxOpenShards = try integer()
    case "passwordHashCost": passwordHashCost = try integer()
    case "calendarDirectory": calendarDirectory = text
    case "stuckTransferMinutes": stuckTransferMinutes = try integer()
    case "maxConnections": maxConnections = try integer()
    case "maxConnectionsPerAddress": maxConnectionsPerAddress = try integer()
    case "wireMemoryBudgetBytes": wireMemoryBudgetBytes = try integer()
    case "memoryLimitBytes": memoryLimitBytes = try integer()
    case "halfCloseTimeoutSeconds": halfCloseTimeoutSeconds = try seconds()
    case "unreadResponseTimeoutSeconds": unreadResponseTimeoutSeconds = try seconds()
    case "auditHeadFile": auditHeadFile = text.isEmpty ? nil : text
    case "dataKeyFile": dataKeyFile = text.isEmpty ? nil : text
    case "auditHeadIntervalSeconds": auditHeadIntervalSeconds = try seconds()
    case "auditRetentionMonths": auditRetentionMonths = try integer()
    case "retentionYears": retentionYears = try integer()
    default:
      throw ConfigurationError(key: key, message: "is not a setting", source: source)
    }
  }
}
