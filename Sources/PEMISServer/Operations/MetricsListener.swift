internal import NIOCore
internal import NIOHTTP1
internal import NIOPosix
internal import Synchronization

/// `GET /metrics` over plain HTTP/1.1 for Prometheus (docs/OPERATIONS.md, "Metrics"), on its own
/// address (`metricsHost`, default loopback, and `metricsPort`): the RPC listeners may face the
/// district network while the figures stay on the machine, or on the monitoring network.
///
/// Small on purpose: one path, GET or HEAD, one answer per connection, at most
/// ``maxConnections`` at once and ``readTimeout`` to send the request. The figures carry no
/// personal data, but they are the district's, so the default address is loopback.
final class MetricsListener: Sendable {
  static let maxConnections = 16
  static let readTimeout = TimeAmount.seconds(10)

  private let host: String
  private let port: Int
  /// Renders the exposition text (reads the registry: async).
  private let render: @Sendable () async -> [UInt8]
  private let state = Mutex(State())

  private struct State {
    var channel: (any Channel)?
    var open = 0
    /// The bound address, or why binding failed; callers waiting for it until then.
    var address: Result<SocketAddress, any Error>?
    var waiters: [CheckedContinuation<SocketAddress, any Error>] = []
  }

  init(host: String, port: Int, render: @escaping @Sendable () async -> [UInt8]) {
    self.host = host
    self.port = port
    self.render = render
  }

  /// The address it listens on, once bound (useful with port 0); throws if binding failed.
  var listeningAddress: SocketAddress {
    get async throws {
      try await withCheckedThrowingContinuation { continuation in
        let known = state.withLock { state -> Result<SocketAddress, any Error>? in
          if state.address == nil { state.waiters.append(continuation) }
          return state.address
        }
        if let known { continuation.resume(with: known) }
      }
    }
  }

  private func settle(_ result: Result<SocketAddress, any Error>) {
    let waiters = state.withLock { state in
      state.address = result
      defer { state.waiters.removeAll() }
      return state.waiters
    }
    for waiter in waiters { waiter.resume(with: result) }
  }

  /// Binds and serves until ``stop()`` or the task is cancelled.
  func serve() async throws {
    let channel: any Channel
    do {
      channel = try await bind()
    } catch {
      let failure = ConfigurationError(key: "metricsPort", message: "cannot listen on \(host):\(port) for metrics: \(error)")
      settle(.failure(failure))
      throw failure
    }
    let stopped = state.withLock { state -> Bool in
      state.channel = channel
      return state.address != nil  // stop() came first
    }
    if stopped {
      channel.close(promise: nil)
      return
    }
    if let address = channel.localAddress { settle(.success(address)) }
    try await withTaskCancellationHandler {
      try await channel.closeFuture.get()
    } onCancel: {
      channel.close(promise: nil)
    }
  }

  /// Stops listening (graceful shutdown): a scrape under way still gets its answer.
  func stop() {
    let (channel, waiters) = state.withLock { state -> ((any Channel)?, [CheckedContinuation<SocketAddress, any Error>]) in
      guard state.address == nil else { return (state.channel, []) }
      state.address = .failure(CancellationError())
      defer { state.waiters.removeAll() }
      return (state.channel, state.waiters)
    }
    for waiter in waiters { waiter.resume(throwing: CancellationError()) }
    channel?.close(promise: nil)
  }

  private func bind() async throws -> any Channel {
    let render = self.render
    return try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
      .serverChannelOption(.backlog, value: 64)
      .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
      .childChannelInitializer { [self] channel in
        guard admit() else { return channel.close() }
        channel.closeFuture.whenComplete { _ in self.release() }
        return channel.eventLoop.makeCompletedFuture {
          try channel.pipeline.syncOperations.addHandler(IdleStateHandler(readTimeout: Self.readTimeout))
          try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
          try channel.pipeline.syncOperations.addHandler(MetricsHTTPHandler(render: render))
        }
      }
      .bind(host: host, port: port)
      .get()
  }

  private func admit() -> Bool {
    state.withLock { state in
      guard state.open < Self.maxConnections else { return false }
      state.open += 1
      return true
    }
  }

  private func release() { state.withLock { $0.open -= 1 } }
}

/// One request, one answer, then the connection closes.
final class MetricsHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = HTTPServerRequestPart
  typealias OutboundOut = HTTPServerResponsePart

  private let render: @Sendable () async -> [UInt8]
  private var head: HTTPRequestHead?
  private var answered = false

  init(render: @escaping @Sendable () async -> [UInt8]) { self.render = render }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    switch unwrapInboundIn(data) {
    case .head(let head): self.head = head
    case .body: break  // A GET has none; whatever comes is ignored, and bounded by the timeout.
    case .end: respond(context: context)
    }
  }

  func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
    if event is IdleStateHandler.IdleStateEvent { context.close(promise: nil) } else { context.fireUserInboundEventTriggered(event) }
  }

  private func respond(context: ChannelHandlerContext) {
    guard !answered, let head else { return }
    answered = true
    let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
    guard path == "/metrics" else {
      return write(context: context, head: head, status: .notFound, type: "text/plain; charset=utf-8", body: Array("not found: the metrics are at /metrics\n".utf8))
    }
    guard head.method == .GET || head.method == .HEAD else {
      return write(
        context: context, head: head, status: .methodNotAllowed, type: "text/plain; charset=utf-8",
        body: Array("only GET and HEAD\n".utf8), extra: [("Allow", "GET, HEAD")])
    }
    let loop = context.eventLoop
    let bound = NIOLoopBound((self, context), eventLoop: loop)
    let render = self.render
    loop.makeFutureWithTask { await render() }.whenSuccess { body in
      let (handler, context) = bound.value
      handler.write(context: context, head: head, status: .ok, type: "text/plain; version=0.0.4; charset=utf-8", body: body)
    }
  }

  private func write(
    context: ChannelHandlerContext, head: HTTPRequestHead, status: HTTPResponseStatus, type: String, body: [UInt8],
    extra: [(String, String)] = []
  ) {
    var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", "\(body.count)"), ("Connection", "close")])
    headers.add(contentsOf: extra)
    context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
    if head.method != .HEAD {
      context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
    }
    let channel = context.channel
    context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
  }
}
