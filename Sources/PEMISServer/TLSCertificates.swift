internal import NIOCertificateReloading
internal import NIOSSL
internal import Synchronization

/// The server's certificate chain and key, read from `tlsCertificateChainFile` and
/// `tlsPrivateKeyFile` at start and again on each ``reload()`` (SIGHUP). Both listeners ask it at
/// every handshake, so a new connection gets the certificate last read and an open one keeps the
/// one it shook hands with. A reload that fails keeps the old pair: a half-copied file never
/// takes the server off the air.
final class ServerCertificates: CertificateReloader {
  let chainFile: String
  let keyFile: String
  private let current: Mutex<NIOSSLContextConfigurationOverride>

  init(chainFile: String, keyFile: String) throws(ConfigurationError) {
    self.chainFile = chainFile
    self.keyFile = keyFile
    current = Mutex(try Self.read(chainFile: chainFile, keyFile: keyFile))
  }

  var sslContextConfigurationOverride: NIOSSLContextConfigurationOverride { current.withLock { $0 } }

  /// When the certificate now presented (the chain's first) stops being valid, seconds since
  /// 1970: the metrics' expiry, so an operator is warned before clients start refusing it.
  var notValidAfter: Int64? {
    guard case .certificate(let leaf)? = sslContextConfigurationOverride.certificateChain?.first else { return nil }
    return Int64(leaf.notValidAfter)
  }

  /// Reads both files again; on success new handshakes use them.
  func reload() throws(ConfigurationError) {
    let next = try Self.read(chainFile: chainFile, keyFile: keyFile)
    current.withLock { $0 = next }
  }

  /// TLS 1.2 or later, certificate from this reloader, no client certificates.
  func serverConfiguration(applicationProtocols: [String] = []) throws(ConfigurationError) -> TLSConfiguration {
    var configuration: TLSConfiguration
    do {
      configuration = try TLSConfiguration.makeServerConfiguration(certificateReloader: self)
    } catch {
      throw ConfigurationError(key: "tlsCertificateChainFile", message: "cannot be used: \(error)", source: chainFile)
    }
    configuration.minimumTLSVersion = .tlsv12
    configuration.applicationProtocols = applicationProtocols
    return configuration
  }

  /// The context PEMIS wire's listener hands every new connection.
  func wireContext() throws(ConfigurationError) -> NIOSSLContext {
    let configuration = try serverConfiguration()
    do {
      return try NIOSSLContext(configuration: configuration)
    } catch {
      throw ConfigurationError(key: "tlsCertificateChainFile", message: "cannot be used: \(error)", source: chainFile)
    }
  }

  /// Parses the pair and proves they belong together by building a context from them, so a
  /// mismatched key is refused here rather than at a client's handshake.
  private static func read(chainFile: String, keyFile: String) throws(ConfigurationError) -> NIOSSLContextConfigurationOverride {
    let chain: [NIOSSLCertificate]
    do {
      chain = try NIOSSLCertificate.fromPEMFile(chainFile)
    } catch {
      throw ConfigurationError(
        key: "tlsCertificateChainFile", message: "cannot be read as PEM certificates: \(error)", source: chainFile)
    }
    guard !chain.isEmpty else {
      throw ConfigurationError(key: "tlsCertificateChainFile", message: "holds no certificate", source: chainFile)
    }
    let key: NIOSSLPrivateKey
    do {
      key = try NIOSSLPrivateKey(file: keyFile, format: .pem)
    } catch {
      throw ConfigurationError(key: "tlsPrivateKeyFile", message: "cannot be read as a PEM private key: \(error)", source: keyFile)
    }
    do {
      _ = try NIOSSLContext(
        configuration: .makeServerConfiguration(
          certificateChain: chain.map { .certificate($0) }, privateKey: .privateKey(key)))
    } catch {
      throw ConfigurationError(
        key: "tlsPrivateKeyFile", message: "does not match the certificate in \(chainFile): \(error)", source: keyFile)
    }
    var override = NIOSSLContextConfigurationOverride()
    override.certificateChain = chain.map { .certificate($0) }
    override.privateKey = .privateKey(key)
    return override
  }
}
