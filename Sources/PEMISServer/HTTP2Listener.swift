internal import GRPCCore
internal import GRPCNIOTransportHTTP2Posix
internal import NIOCore
internal import NIOCertificateReloading

/// The optional second listener: standard gRPC over HTTP/2 (TLS when configured, else plaintext),
/// from grpc-swift-nio-transport.
/// It serves the same services behind the same interceptors as PEMIS wire (``PEMISServer``), so
/// clients that speak only standard gRPC — grpcio, grpcurl, other languages' generated stubs —
/// reach the server with the same authentication, policy and audit.
///
/// Kept in its own file because the transport's module exports a `SocketAddress` of its own.
struct HTTP2Listener: Sendable {
  let transport: HTTP2ServerTransport.Posix
  /// The host and port as configured, for messages.
  let host: String
  let port: Int

  /// Resolves `host` once (so "localhost" works as it does for PEMIS wire) and prepares the
  /// transport with the server's limits: the largest message as PEMIS wire's largest frame, calls
  /// per connection, the idle timeout, and the grace period for calls in flight at shutdown.
  init(host: String, port: Int, configuration: ServerConfiguration, certificates: ServerCertificates? = nil) throws {
    let resolved: NIOCore.SocketAddress
    do {
      resolved = try NIOCore.SocketAddress.makeAddressResolvingHost(host, port: port)
    } catch {
      throw ConfigurationError(key: "host", message: "\(host) cannot be resolved for the HTTP/2 listener: \(error)")
    }
    let address: GRPCNIOTransportCore.SocketAddress
    switch resolved {
    case .v6: address = .ipv6(host: resolved.ipAddress ?? host, port: port)
    default: address = .ipv4(host: resolved.ipAddress ?? host, port: port)
    }
    let config = HTTP2ServerTransport.Posix.Config.defaults { config in
      config.rpc.maxRequestPayloadSize = configuration.maxFrameSize
      config.http2.maxConcurrentStreams = configuration.maxConcurrentCallsPerConnection
      config.connection.maxIdleTime = .milliseconds(Int64(configuration.idleTimeoutSeconds * 1000))
      config.connection.maxGraceTime = .milliseconds(Int64(configuration.gracePeriodSeconds * 1000))
      // The one hook the transport offers on each new call's channel (see KeepCallsThroughDrain).
      config.channelDebuggingCallbacks.onAcceptHTTP2Stream = { channel in
        channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(KeepCallsThroughDrain(), position: .first)
        }
      }
    }
    self.host = host
    self.port = port
    // With TLS: the same reloaded certificate as PEMIS wire, ALPN "h2" offered (grpcio requires it).
    let security: HTTP2ServerTransport.Posix.TransportSecurity
    if let certificates {
      do {
        security = try .tls(certificateReloader: certificates)
      } catch {
        throw ConfigurationError(key: "tlsCertificateChainFile", message: "cannot be used for HTTP/2: \(error)")
      }
    } else {
      security = .plaintext
    }
    self.transport = HTTP2ServerTransport.Posix(address: address, transportSecurity: security, config: config)
  }

  /// "127.0.0.1:7401": where standard gRPC clients reach the server, once it is listening.
  var listeningHostAndPort: String {
    get async throws {
      let address = try await transport.listeningAddress
      if let ipv4 = address.ipv4 { return "\(ipv4.host):\(ipv4.port)" }
      if let ipv6 = address.ipv6 { return "[\(ipv6.host)]:\(ipv6.port)" }
      return "\(address)"
    }
  }

  /// The GRPCServer serving `services` over this listener.
  func server(services: [any RegistrableRPCService], interceptors: [any ServerInterceptor]) -> GRPCServer<
    HTTP2ServerTransport.Posix
  > {
    GRPCServer(transport: transport, services: services, interceptors: interceptors)
  }

  /// Runs `server` until it stops; a failure (most often: the port is taken) names the setting.
  func serve(_ server: GRPCServer<HTTP2ServerTransport.Posix>) async throws {
    do {
      try await server.serve()
    } catch let error as RuntimeError {
      let cause = error.cause.map { "\($0)" } ?? error.message
      throw ConfigurationError(key: "http2Port", message: "cannot serve gRPC over HTTP/2 on \(host):\(port): \(cause)")
    }
  }
}

/// Gives calls over HTTP/2 the graceful shutdown they get over PEMIS wire: they run on within the
/// grace period, and are cancelled only when it ends.
///
/// grpc-swift-nio-transport passes its "server is shutting down" event (`ChannelShouldQuiesceEvent`)
/// down to every call's channel, where it cancels the call's `RPCCancellationHandle` at once; a
/// handler that honours cancellation (Echo's delay, any long job that checks
/// `context.cancellation`) would then give up at the first moment of the drain over HTTP/2 but not
/// over PEMIS wire. This handler, first on each call's channel, stops that event there. The
/// connection itself still sees it (GOAWAY, no new calls), and when the grace period
/// (`maxGraceTime`) ends the transport closes the connection, which cancels what is left — as
/// PEMIS wire does.
final class KeepCallsThroughDrain: ChannelInboundHandler {
  typealias InboundIn = Any

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is ChannelShouldQuiesceEvent { return }
    context.fireUserInboundEventTriggered(event)
  }
}

