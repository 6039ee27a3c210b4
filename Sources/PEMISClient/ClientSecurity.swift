internal import Foundation
public import GRPCCore
internal import NIOSSL
public import PEMISWire

/// How a client reaches the server. `pemis` uses TLS unless the user asks for plaintext, so a
/// password or session token crosses a network in cleartext only by the user's choice.
public enum ClientSecurity: Sendable, Equatable {
  /// TLS, the server's certificate verified (chain and hostname) against the CA certificates in
  /// `caFile` (PEM), or the system's trust store when nil.
  case tls(caFile: String?)
  /// No TLS: for a server on loopback, or a network the user trusts.
  case plaintext

  /// The PEMIS wire client's TLS for `address`, nil for plaintext. An unusable CA file is
  /// INVALID_ARGUMENT, naming the file.
  public func wireTLS(for address: ServerAddress) throws(RPCError) -> WireClientTLS? {
    guard case .tls(let caFile) = self else { return nil }
    var configuration = TLSConfiguration.makeClientConfiguration()
    configuration.minimumTLSVersion = .tlsv12
    configuration.certificateVerification = .fullVerification
    if let caFile {
      let roots: [NIOSSLCertificate]
      do {
        roots = try NIOSSLCertificate.fromPEMFile(caFile)
      } catch {
        throw RPCError(code: .invalidArgument, message: "CA file \(caFile) cannot be read as PEM certificates: \(error)")
      }
      guard !roots.isEmpty else {
        throw RPCError(code: .invalidArgument, message: "CA file \(caFile) holds no certificate")
      }
      configuration.trustRoots = .certificates(roots)
    }
    let context: NIOSSLContext
    do {
      context = try NIOSSLContext(configuration: configuration)
    } catch {
      throw RPCError(code: .invalidArgument, message: "cannot set up TLS: \(error)")
    }
    // SNI and name checks take a DNS name; an IP address is checked against the certificate's
    // IP addresses instead (NIOSSL does so when no name is given).
    return WireClientTLS(context: context, serverHostname: Self.isIPAddress(address.host) ? nil : address.host)
  }

  static func isIPAddress(_ host: String) -> Bool {
    var v4 = in_addr()
    var v6 = in6_addr()
    return inet_pton(AF_INET, host, &v4) == 1 || inet_pton(AF_INET6, host, &v6) == 1
  }
}
