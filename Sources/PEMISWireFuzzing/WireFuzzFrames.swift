internal import Foundation

/// PEMIS wire conversations written byte by byte from docs/PROTOCOL.md — not with the library
/// under test — so the fuzzers start from inputs that reach deep and mutate from there.
public enum WireFuzzFrames {
  /// Stands for a real session token in a fuzzing input: the server harness swaps each occurrence
  /// for a token it logged in with, so mutations of authenticated calls reach the handlers. 43
  /// bytes, the length of a real token.
  public static let tokenPlaceholder = "FUZZ" + String(repeating: "~", count: 39)

  /// Conversations that need no message type beyond the wire's own (Echo requests are hand
  /// encoded: field 1, text), by name.
  public static func conversations() -> [(name: String, bytes: [UInt8])] {
    let echo = bytesField(1, Array("你好, 滨海新区".utf8))
    var seeds: [(String, [UInt8])] = []
    seeds.append(("hello-only", hello()))
    seeds.append(("health", hello() + call(1, "/pemis.v1.Health/Check", token: false, messages: [[]])))
    seeds.append(("echo-get", hello() + call(1, "/pemis.v1.Echo/Get", token: false, messages: [echo])))
    seeds.append(("echo-collect", hello() + call(1, "/pemis.v1.Echo/Collect", token: false, messages: [echo, echo, echo])))
    seeds.append(
      ("echo-update-window",
       hello() + call(1, "/pemis.v1.Echo/Update", token: false, messages: [echo], close: false)
        + frame(0x0A, stream: 1, payload: [0, 0, 0, 8]) + frame(0x04, stream: 1, payload: echo) + frame(0x05, stream: 1, payload: [])))
    seeds.append(("echo-cancel", hello() + call(1, "/pemis.v1.Echo/Expand", token: false, messages: [echo], close: false) + frame(0x07, stream: 1, payload: [])))
    seeds.append(("ping", hello() + frame(0x08, stream: 0, payload: [1, 2, 3, 4, 5, 6, 7, 8])))
    seeds.append(("goaway", hello() + call(1, "/pemis.v1.Health/Check", token: false, messages: [[]]) + frame(0x09, stream: 0, payload: [8, 1])))
    seeds.append(
      ("metadata-binary",
       hello() + call(1, "/pemis.v1.Echo/Get", token: false, messages: [echo], metadata: [("trace-bin", .binary([0, 1, 2])), ("x-note", .text("note"))])))
    seeds.append(("two-calls", hello() + call(1, "/pemis.v1.Health/Check", token: false, messages: [[]]) + call(3, "/pemis.v1.Session/WhoAmI", token: true, messages: [[]])))
    seeds.append(("unary-two-messages", hello() + call(1, "/pemis.v1.Echo/Get", token: false, messages: [echo, echo])))
    seeds.append(("drain-race", hello() + frame(0x09, stream: 0, payload: [8, 0]) + call(1, "/pemis.v1.Echo/Get", token: false, messages: [echo])))
    return seeds
  }

  public enum Value {
    case text(String)
    case binary([UInt8])
  }

  public static func hello() -> [UInt8] {
    var payload: [UInt8] = []
    payload += varintField(1, 1) + varintField(2, 1) + varintField(3, 4 * 1024 * 1024) + varintField(4, 16)
    payload += varintField(5, 100) + bytesField(6, Array("pemis-fuzz".utf8))
    return frame(0x01, stream: 0, payload: payload)
  }

  /// CALL_START (with the session token if asked), the messages, then CLOSE_SEND unless not.
  public static func call(
    _ stream: UInt32, _ method: String, token: Bool, messages: [[UInt8]], metadata: [(String, Value)] = [],
    close: Bool = true
  ) -> [UInt8] {
    var entries = metadata
    if token { entries.append(("authorization", .text("Bearer \(tokenPlaceholder)"))) }
    var start = bytesField(1, Array(method.utf8))
    for (key, value) in entries {
      var entry = bytesField(1, Array(key.utf8))
      switch value {
      case .text(let text): entry += bytesField(2, Array(text.utf8))
      case .binary(let bytes): entry += bytesField(3, bytes)
      }
      start += bytesField(2, entry)
    }
    start += varintField(3, 30_000_000)
    var bytes = frame(0x02, stream: stream, payload: start)
    for message in messages { bytes += frame(0x04, stream: stream, payload: message) }
    if close { bytes += frame(0x05, stream: stream, payload: []) }
    return bytes
  }

  /// One frame: 4-byte length, kind, flags, 4-byte stream id, payload (docs/PROTOCOL.md §2).
  public static func frame(_ kind: UInt8, flags: UInt8 = 0, stream: UInt32, payload: [UInt8]) -> [UInt8] {
    bigEndian(UInt32(payload.count)) + [kind, flags] + bigEndian(stream) + payload
  }

  static func bigEndian(_ value: UInt32) -> [UInt8] {
    [UInt8(value >> 24), UInt8((value >> 16) & 0xFF), UInt8((value >> 8) & 0xFF), UInt8(value & 0xFF)]
  }

  static func varint(_ value: UInt64) -> [UInt8] {
    var value = value
    var bytes: [UInt8] = []
    while value >= 0x80 {
      bytes.append(UInt8(value & 0x7F) | 0x80)
      value >>= 7
    }
    return bytes + [UInt8(value)]
  }

  public static func varintField(_ number: UInt64, _ value: UInt64) -> [UInt8] { varint(number << 3) + varint(value) }

  public static func bytesField(_ number: UInt64, _ bytes: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(UInt64(bytes.count)) + bytes
  }
}

/// Writes the seed inputs where `tools/fuzz.sh` asks (PEMIS_FUZZ_WRITE_SEEDS=DIR) and exits, so the
/// corpus a run starts from is regenerated from the code that defines it.
public enum FuzzSeeds {
  public static func writeIfAsked(_ seeds: [(name: String, bytes: [UInt8])], dictionary: String?) {
    guard let directory = ProcessInfo.processInfo.environment["PEMIS_FUZZ_WRITE_SEEDS"] else { return }
    do {
      try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      for seed in seeds {
        try Data(seed.bytes).write(to: URL(fileURLWithPath: directory).appendingPathComponent("seed-\(seed.name)"))
      }
      if let dictionary, let path = ProcessInfo.processInfo.environment["PEMIS_FUZZ_WRITE_DICTIONARY"] {
        try Data(dictionary.utf8).write(to: URL(fileURLWithPath: path))
      }
      exit(0)
    } catch {
      FileHandle.standardError.write(Data("cannot write the seed corpus: \(error)\n".utf8))
      exit(1)
    }
  }
}
