internal import Foundation
public import Logging
internal import Synchronization

/// The server's log lines on standard error, as text (the default) or one JSON object per line
/// for a log collector (`logFormat`, docs/OPERATIONS.md, "Logs"), through one ``LogOutput`` that
/// holds back a line repeated too often.
public struct ServerLogHandler: LogHandler {
  public enum Format: String, Sendable, CaseIterable {
    /// `2026-12-02T08:00:00.123+08:00 warning pemis: message key=value`
    case text
    /// `{"time":"…","level":"warning","label":"pemis","message":"…","key":"value"}`
    case json
  }

  public var logLevel: Logger.Level
  public var metadata: Logger.Metadata = [:]
  public var metadataProvider: Logger.MetadataProvider?
  private let label: String
  private let format: Format
  private let output: LogOutput

  public init(label: String, level: Logger.Level, format: Format, output: LogOutput = .standardError) {
    self.label = label
    self.logLevel = level
    self.format = format
    self.output = output
  }

  public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
    get { metadata[key] }
    set { metadata[key] = newValue }
  }

  public func log(event: LogEvent) {
    var all = metadata
    if let provided = metadataProvider?.get() { all.merge(provided) { _, new in new } }
    if let extra = event.metadata { all.merge(extra) { _, new in new } }
    let message = event.message.description
    output.write(key: "\(event.level) \(label) \(message)") { time in
      switch format {
      case .text: Self.text(time: time, level: event.level, label: label, message: message, metadata: all)
      case .json: Self.json(time: time, level: event.level, label: label, message: message, metadata: all)
      }
    }
  }

  static func text(time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
    let pairs = metadata.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    return "\(time) \(level) \(label): \(message)\(pairs.isEmpty ? "" : " " + pairs)"
  }

  /// One line of JSON: time, level, label, message, then the metadata flattened (nested values as
  /// JSON too). Keys are sorted, so lines compare and diff well.
  static func json(time: String, level: Logger.Level, label: String, message: String, metadata: Logger.Metadata) -> String {
    var object: [String: Any] = [:]
    for (key, value) in metadata { object[key] = jsonValue(value) }
    object["time"] = time
    object["level"] = level.rawValue
    object["label"] = label
    object["message"] = message
    guard let data = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
      return #"{"level":"error","message":"a log line could not be written as JSON"}"#
    }
    return String(decoding: data, as: UTF8.self)
  }

  private static func jsonValue(_ value: Logger.Metadata.Value) -> Any {
    switch value {
    case .string(let text): text
    case .stringConvertible(let convertible): convertible.description
    case .array(let values): values.map(jsonValue)
    case .dictionary(let values): values.mapValues(jsonValue)
    }
  }
}

/// Where the log handlers write: whole lines, one at a time, and no line repeated more than
/// ``maxRepeats`` times in ``window`` — a flood of the same failure (a disk gone, a client
/// retrying) is held back and counted, and the count is written when the window ends.
public final class LogOutput: Sendable {
  public static let standardError = LogOutput { line in FileHandle.standardError.write(Data((line + "\n").utf8)) }
  /// Lines of one kind (level, label, message: not the metadata) written per window.
  public let maxRepeats: Int
  public let window: Duration
  private let sink: @Sendable (String) -> Void
  private let state = Mutex<[String: (start: ContinuousClock.Instant, written: Int, held: Int)]>([:])

  public init(maxRepeats: Int = 20, window: Duration = .seconds(60), sink: @escaping @Sendable (String) -> Void) {
    self.maxRepeats = maxRepeats
    self.window = window
    self.sink = sink
  }

  /// Writes the line `make` renders (given the time) unless lines of this `key` are held back.
  func write(key: String, _ make: (String) -> String) {
    let now = ContinuousClock.now
    let (write, heldBefore) = state.withLock { kinds -> (Bool, Int) in
      // Forget kinds whose window ended, so the table stays small.
      if kinds.count > 1_000 { kinds = kinds.filter { now - $0.value.start < window } }
      guard var kind = kinds[key], now - kind.start < window else {
        let held = kinds[key]?.held ?? 0
        kinds[key] = (now, 1, 0)
        return (true, held)
      }
      if kind.written < maxRepeats {
        kind.written += 1
        kinds[key] = kind
        return (true, 0)
      }
      kind.held += 1
      kinds[key] = kind
      return (false, 0)
    }
    guard write else { return }
    let time = Self.timestamp()
    if heldBefore > 0 {
      sink(make(time) + " (the same line was held back \(heldBefore) times in the last window)")
    } else {
      sink(make(time))
    }
  }

  /// ISO 8601 with milliseconds in the machine's zone (Beijing time on the district's server).
  static func timestamp() -> String {
    let formatter = ISO8601DateFormatter()
    formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
    formatter.timeZone = .current
    return formatter.string(from: Date())
  }
}
