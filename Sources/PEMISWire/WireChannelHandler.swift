internal import Logging
internal import NIOCore

/// The NIO end of a connection: hands decoded frames to its ``WireConnection`` and reports the
/// channel's end. All protocol logic lives in the connection; this handler only adapts.
final class WireChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
  typealias InboundIn = FrameDecoder.Event

  private let connection: WireConnection
  private let handshakeTimeout: TimeAmount
  private var closeError: (any Error)?

  init(connection: WireConnection, handshakeTimeout: TimeAmount) {
    self.connection = connection
    self.handshakeTimeout = handshakeTimeout
  }

  func handlerAdded(context: ChannelHandlerContext) {
    if context.channel.isActive { connection.channelActive(handshakeTimeout: handshakeTimeout) }
  }

  func channelActive(context: ChannelHandlerContext) {
    connection.channelActive(handshakeTimeout: handshakeTimeout)
    context.fireChannelActive()
  }

  func channelRead(context: ChannelHandlerContext, data: NIOAny) {
    connection.receive(unwrapInboundIn(data))
  }

  func channelInactive(context: ChannelHandlerContext) {
    connection.channelClosed(error: closeError)
    context.fireChannelInactive()
  }

  func handlerRemoved(context: ChannelHandlerContext) {
    // A channel that never became active (connection refused) is never inactive either.
    connection.channelClosed(error: closeError)
  }

  func channelWritabilityChanged(context: ChannelHandlerContext) {
    let writable = context.channel.isWritable
    connection.writabilityChanged(writable)
    // Server: a client that sends calls but does not read the answers is not read from until its
    // answers drain. A client never stops reading: the server may be waiting for it to read.
    if connection.role == .server {
      try? context.channel.syncOptions?.setOption(.autoRead, value: writable)
    }
    context.fireChannelWritabilityChanged()
  }

  func errorCaught(context: ChannelHandlerContext, error: any Error) {
    // Garbage, truncation or a socket error: only this connection is affected.
    closeError = error
    if let error = error as? WireProtocolError {
      if let log = connection.governance?.badConnectionLog {
        log.log(connection.logger, .info, "\(error)")
      } else {
        connection.logger.info("\(error)")
      }
      context.close(promise: nil)
    } else if error is IOError || error is ChannelError {
      context.close(promise: nil)
    } else {
      connection.fail(.protocolError, "\(error)")
    }
  }
}

extension ChannelPipeline.SynchronousOperations {
  /// Installs the PEMIS wire handlers on a fresh TCP channel.
  func addWireHandlers(connection: WireConnection, handshakeTimeout: TimeAmount) throws {
    try addHandler(ByteToMessageHandler(FrameDecoder(maxPayloadSize: connection.localLimits.maxFrameSize)))
    try addHandler(WireChannelHandler(connection: connection, handshakeTimeout: handshakeTimeout))
  }
}
