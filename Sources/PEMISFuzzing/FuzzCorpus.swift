internal import Foundation
internal import GRPCCore
internal import PEMISWireFuzzing
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

  /// Seed inputs for the server fuzzer, by file name: the wire's conversations, a login, and a
  /// call to every method with a session.
  public static func serverSeeds() -> [(name: String, bytes: [UInt8])] {
    typealias W = WireFuzzFrames
    var seeds = W.conversations()
    let login = try! Pemis_V1_LoginRequest.with {
      $0.username = "fuzz.admin"
      $0.password = "wrong-password"
    }.serializedBytes() as [UInt8]
    seeds.append(("login-wrong", W.hello() + W.call(1, "/pemis.v1.Session/Login", token: false, messages: [login])))
    for (index, method) in methods.enumerated() {
      seeds.append(("method-\(String(format: "%02d", index))", W.hello() + W.call(1, method, token: true, messages: [[]])))
    }
    return seeds
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
}
