import Foundation
import GRPCCore
import PEMISClient
import PEMISProto
import PEMISWire
import SwiftProtobuf
import Testing

/// A real `pemis-server` process for clients in other languages: a data directory seeded offline
/// with two active kindergartens (`pemis-load seed-district`), PEMIS wire and gRPC over HTTP/2 on
/// free ports, and one child enrolled in the first kindergarten through the real service.
struct SeededServer {
  /// The seeded principals' password (`pemis-load seed-district`'s default).
  static let password = "Seeded-principal-2026"
  static let kindergarten = "1100000001"
  static let otherKindergarten = "1100000002"
  /// The first kindergarten's principal (seed-district names principals p<code>).
  static let user = "p\(kindergarten)"
  /// The enrolled child's full ID number; lists show it masked.
  static let childID = KindergartenDataFixtures.childID

  let server: ServerProcess

  var wire: ServerAddress { ServerAddress(host: "127.0.0.1", port: server.port) }
  var http2: ServerAddress { ServerAddress(host: "127.0.0.1", port: server.http2Port ?? 0) }

  /// - Parameter tls: serve both listeners over TLS with these test certificates.
  static func start(tls: TestCertificates? = nil) async throws -> SeededServer {
    let data = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-seeded-\(UUID())/data").path
    let seed = try await run(
      productsDirectory.appendingPathComponent("pemis-load"),
      ["seed-district", "--data-dir", data, "--kindergartens", "2", "--password", password])
    try #require(seed.status == 0, "seed-district failed: \(seed.stdout)\(seed.stderr)")
    let tlsArguments = tls.map {
      ["--tls-certificate-chain", $0.server.chainFile, "--tls-private-key", $0.server.keyFile]
    } ?? []
    let server = try await ServerProcess.start(dataDirectory: data, extraArguments: ["--http2-port", "0"] + tlsArguments)
    let seeded = SeededServer(server: server)
    let security: ClientSecurity = tls.map { .tls(caFile: $0.caFile) } ?? .plaintext
    let token = try await withPEMISClient(seeded.wire, security: security) { client in
      try await Pemis_V1_Session.Client(wrapping: client).login(.with {
        $0.username = user
        $0.password = password
      }).token
    }
    let child = try await withPEMISClient(seeded.wire, token: token, security: security) { client in
      try await Pemis_V1_ChildRecords.Client(wrapping: client).enrollChild(.with {
        $0.child = KindergartenDataFixtures.child()
      })
    }
    try #require(child.state == "enrolled")
    return seeded
  }
}
