internal import NIOCore
public import NIOSSL
internal import Synchronization

/// TLS for a PEMIS wire client: the context (trust roots, verification) and the name the
/// server's certificate must carry.
public struct WireClientTLS: Sendable {
  /// Built by the caller from its trust roots; certificate and hostname verification stay on.
  public var context: NIOSSLContext
  /// The DNS name checked against the certificate and sent as SNI; nil when the server is named
  /// by an IP address, which is then checked against the certificate's IP addresses instead.
  public var serverHostname: String?

  public init(context: NIOSSLContext, serverHostname: String?) {
    self.context = context
    self.serverHostname = serverHostname
  }
}

/// Why the TLS handshake of one connection attempt failed, for the caller's error message.
final class TLSFailure: Sendable {
  private let reason = Mutex<String?>(nil)

  var description: String? { reason.withLock { $0 } }

  func record(_ error: any Error) {
    reason.withLock { if $0 == nil { $0 = "\(error)" } }
  }
}

/// Right after the NIOSSL handler: a TLS error (a plaintext peer, an untrusted certificate, a
/// peer that leaves without close_notify) ends this connection quietly. Without it the error
/// would reach the wire handler, which answers protocol errors with a GOAWAY that cannot be sent
/// over a failed handshake.
final class TLSFailureHandler: ChannelInboundHandler {
  typealias InboundIn = ByteBuffer

  private let failure: TLSFailure?

  init(failure: TLSFailure? = nil) {
    self.failure = failure
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    guard error is NIOSSLError || error is BoringSSLError || error is NIOSSLExtraError else {
      context.fireErrorCaught(error)
      return
    }
    failure?.record(error)
    context.close(promise: nil)
  }
}

extension ChannelPipeline.SynchronousOperations {
  /// Server: TLS first on a fresh TCP channel, before the PEMIS wire handlers.
  func addServerTLS(_ context: NIOSSLContext) throws {
    try addHandler(NIOSSLServerHandler(context: context))
    try addHandler(TLSFailureHandler())
  }

  /// Client: TLS first on a fresh TCP channel, before the PEMIS wire handlers.
  func addClientTLS(_ tls: WireClientTLS, failure: TLSFailure) throws {
    try addHandler(NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverHostname))
    try addHandler(TLSFailureHandler(failure: failure))
  }
}
