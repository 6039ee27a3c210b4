import Crypto
import Foundation
import SwiftASN1
import X509

/// Certificates made at test time with swift-certificates, written as PEM files into a fresh
/// temporary directory: no private key is ever committed. One CA signs a server certificate for
/// localhost and 127.0.0.1, one for another host only, and one for localhost that has expired; a
/// second CA, which no client trusts, signs a localhost certificate of its own.
struct TestCertificates: Sendable {
  let directory: URL
  /// PEM of the CA the clients are told to trust.
  let caFile: String
  /// A CA no client is told about, and its own localhost certificate.
  let otherCAFile: String
  let server: Pair
  let wrongHost: Pair
  let expired: Pair
  let untrusted: Pair

  /// A certificate chain file and its key file.
  struct Pair: Sendable {
    let chainFile: String
    let keyFile: String
  }

  static func make() throws -> TestCertificates {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-tls-\(UUID())")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    let now = Date()
    let ca = try Authority(name: "PEMIS test CA", now: now)
    let other = try Authority(name: "PEMIS stranger CA", now: now)
    let loopback: [GeneralName] = [.dnsName("localhost"), .ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1]))]
    func write(_ name: String, _ text: String) throws -> String {
      let path = directory.appendingPathComponent(name).path
      try Data(text.utf8).write(to: URL(fileURLWithPath: path))
      return path
    }
    func pair(_ name: String, _ issued: (certificate: String, key: String)) throws -> Pair {
      Pair(chainFile: try write("\(name).crt", issued.certificate), keyFile: try write("\(name).key", issued.key))
    }
    return TestCertificates(
      directory: directory,
      caFile: try write("ca.crt", ca.pem),
      otherCAFile: try write("other-ca.crt", other.pem),
      server: try pair("server", ca.issue(names: loopback, validFrom: now - 3600, until: now + 86_400)),
      wrongHost: try pair(
        "wrong-host", ca.issue(names: [.dnsName("kindergarten.example")], validFrom: now - 3600, until: now + 86_400)),
      expired: try pair("expired", ca.issue(names: loopback, validFrom: now - 7 * 86_400, until: now - 86_400)),
      untrusted: try pair("untrusted", other.issue(names: loopback, validFrom: now - 3600, until: now + 86_400)))
  }

  /// A self-signed CA that issues server certificates.
  private struct Authority {
    let key: P256.Signing.PrivateKey
    let name: DistinguishedName
    let certificate: Certificate

    init(name commonName: String, now: Date) throws {
      key = P256.Signing.PrivateKey()
      name = try DistinguishedName { CommonName(commonName) }
      let signing = Certificate.PrivateKey(key)
      certificate = try Certificate(
        version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: signing.publicKey,
        notValidBefore: now - 86_400 * 30, notValidAfter: now + 86_400 * 30, issuer: name, subject: name,
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
          Critical(KeyUsage(keyCertSign: true, cRLSign: true))
        },
        issuerPrivateKey: signing)
    }

    var pem: String { get throws { try certificate.serializeAsPEM().pemString } }

    /// A leaf for `names`, valid in the given window; its chain file holds the leaf only (the
    /// clients know the CA).
    func issue(names: [GeneralName], validFrom: Date, until: Date) throws -> (certificate: String, key: String) {
      let leafKey = P256.Signing.PrivateKey()
      let leaf = try Certificate(
        version: .v3, serialNumber: Certificate.SerialNumber(), publicKey: Certificate.PrivateKey(leafKey).publicKey,
        notValidBefore: validFrom, notValidAfter: until, issuer: name,
        subject: try DistinguishedName { CommonName("PEMIS test server") },
        signatureAlgorithm: .ecdsaWithSHA256,
        extensions: try Certificate.Extensions {
          Critical(BasicConstraints.notCertificateAuthority)
          Critical(KeyUsage(digitalSignature: true))
          try ExtendedKeyUsage([.serverAuth])
          SubjectAlternativeNames(names)
        },
        issuerPrivateKey: Certificate.PrivateKey(key))
      return (try leaf.serializeAsPEM().pemString, leafKey.pemRepresentation)
    }
  }
}
