internal import Foundation
internal import GRPCCore
internal import PEMISProto
internal import SwiftProtobuf

/// The seed inputs: real conversations written from docs/PROTOCOL.md (HELLO, then calls to every
/// method, with and without a session, and the control frames), so the fuzzer starts from inputs
/// that reach deep and mutates from there. `tools/fuzz.sh` writes them into `Fuzz/Corpus/`.
public enum FuzzCorpus {
  /// Every method the server serves, as "/package.Service/Method".
  public static var methods: [String] {
    let all: [[MethodDescriptor]] = [
      Pemis_V1_Health.Method.descriptors, Pemis_V1_Echo.Method.descriptors, Pemis_V1_Session.Method.descriptors,
      Pemis_V1_Accounts.Method.descriptors, Pemis_V1_Onboarding.Method.descriptors,
      Pemis_V1_Kindergartens.Method.descriptors, Pemis_V1_Audit.Method.descriptors,
      Pemis_V1_Deadlines.Method.descriptors, Pemis_V1_KindergartenData.Method.descriptors,
      Pemis_V1_ChildRecords.Method.descriptors, Pemis_V1_Transfers.Method.descriptors,
      Pemis_V1_Duplicates.Method.descriptors, Pemis_V1_District.Method.descriptors,
    ]
    return all.flatMap { $0 }.map { "/\($0.service.fullyQualifiedService)/\($0.method)" }
  }

  /// Seed inputs for the server fuzzer, by file name.
  public static func serverSeeds() -> [(name: String, bytes: [UInt8])] {
    var seeds: [(String, [UInt8])] = []
    let login = try! Pemis_V1_LoginRequest.with {
      $0.username = "fuzz.admin"
      $0.password = "wrong-password"
    }.serializedBytes() as [UInt8]
    let echo = try! Pemis_V1_EchoRequest.with { $0.text = "你好, 滨海新区" }.serializedBytes() as [UInt8]
    seeds.append(("hello-only", hello()))
    seeds.append(("health", hello() + call(1, "/pemis.v1.Health/Check", token: false, messages: [[]])))
    seeds.append(("login-wrong", hello() + call(1, "/pemis.v1.Session/Login", token: false, messages: [login])))
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
       hello() + call(1, "/pemis.v1.Echo/Get", token: false, messages: [echo], metadata: [("trace-bin", .binary([0, 1, 2])), ("x-note", .text("说明"))])))
    seeds.append(("two-calls", hello() + call(1, "/pemis.v1.Health/Check", token: false, messages: [[]]) + call(3, "/pemis.v1.Session/WhoAmI", token: true, messages: [[]])))
    for (index, method) in methods.enumerated() {
      seeds.append(("method-\(String(format: "%02d", index))", hello() + call(1, method, token: true, messages: [[]])))
    }
    return seeds
  }

  /// Seed inputs for the frame fuzzer: the same streams behind its two parameter bytes.
  public static func frameSeeds() -> [(name: String, bytes: [UInt8])] {
    serverSeeds().prefix(12).enumerated().map { index, seed in
      (seed.name, [UInt8(truncatingIfNeeded: 16 + index * 20), UInt8(truncatingIfNeeded: index * 37 + 1)] + seed.bytes)
    }
  }

  /// libFuzzer's dictionary for the server fuzzer: method names, metadata keys, the token
  /// placeholder.
  public static func serverDictionary() -> String {
    var words = methods + [
      "authorization", "Bearer \(ServerFuzzing.tokenPlaceholder)", "grpc-timeout", "-bin", "trace-bin",
      "pemis-fuzz", "/pemis.v1.", "fuzz.admin",
    ]
    words = Array(Set(words)).sorted()
    return words.map { "\"\($0.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\""))\"" }
      .joined(separator: "\n") + "\n"
  }

  // MARK: - Writing frames from docs/PROTOCOL.md

  enum Value {
    case text(String)
    case binary([UInt8])
  }

  static func hello() -> [UInt8] {
    var payload: [UInt8] = []
    payload += varintField(1, 1) + varintField(2, 1) + varintField(3, 4 * 1024 * 1024) + varintField(4, 16)
    payload += varintField(5, 100) + bytesField(6, Array("pemis-fuzz".utf8))
    return frame(0x01, stream: 0, payload: payload)
  }

  static func call(
    _ stream: UInt32, _ method: String, token: Bool, messages: [[UInt8]], metadata: [(String, Value)] = [],
    close: Bool = true
  ) -> [UInt8] {
    var entries = metadata
    if token { entries.append(("authorization", .text("Bearer \(ServerFuzzing.tokenPlaceholder)"))) }
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

  static func frame(_ kind: UInt8, flags: UInt8 = 0, stream: UInt32, payload: [UInt8]) -> [UInt8] {
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

  static func varintField(_ number: UInt64, _ value: UInt64) -> [UInt8] { varint(number << 3) + varint(value) }

  static func bytesField(_ number: UInt64, _ bytes: [UInt8]) -> [UInt8] {
    varint(number << 3 | 2) + varint(UInt64(bytes.count)) + bytes
  }
}

/// Writes the seed inputs where `tools/fuzz.sh` asks (PEMIS_FUZZ_WRITE_SEEDS=DIR) and exits, so the
/// committed corpus is regenerated from the code that defines it.
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
