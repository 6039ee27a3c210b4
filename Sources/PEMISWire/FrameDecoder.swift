public import NIOCore

/// Splits a byte stream into frames, checking each declared length against a limit *before*
/// buffering the payload.
///
/// A frame over the limit is not buffered: the decoder reports its header as `.oversized` and then
/// discards exactly `length` bytes as they arrive, so the connection stays in step and the
/// connection handler can decide whether to fail one call or close the connection.
public struct FrameDecoder: NIOSingleStepByteToMessageDecoder {
  public enum Event: Hashable, Sendable {
    case frame(Frame)
    /// A frame whose payload is longer than the limit; its payload is being skipped.
    case oversized(kind: Frame.Kind, flags: Frame.Flags, streamID: UInt32, length: Int)
  }

  public typealias InboundOut = Event

  /// The largest payload accepted, in bytes.
  public let maxPayloadSize: Int
  /// Payload bytes of an oversized frame still to discard.
  private var bytesToSkip = 0

  public init(maxPayloadSize: Int) {
    precondition(maxPayloadSize >= 0)
    self.maxPayloadSize = maxPayloadSize
  }

  public mutating func decode(buffer: inout ByteBuffer) throws -> Event? {
    while bytesToSkip > 0 {
      let n = min(bytesToSkip, buffer.readableBytes)
      if n == 0 { return nil }
      buffer.moveReaderIndex(forwardBy: n)
      bytesToSkip -= n
    }
    guard
      let (length, kind, flags, streamID) = buffer.getMultipleIntegers(
        at: buffer.readerIndex, endianness: .big, as: (UInt32, UInt8, UInt8, UInt32).self)
    else { return nil }
    let payloadLength = Int(length)
    if payloadLength > maxPayloadSize {
      buffer.moveReaderIndex(forwardBy: Frame.headerSize)
      bytesToSkip = payloadLength
      return .oversized(
        kind: Frame.Kind(rawValue: kind), flags: Frame.Flags(rawValue: flags), streamID: streamID,
        length: payloadLength)
    }
    guard buffer.readableBytes >= Frame.headerSize + payloadLength else { return nil }
    buffer.moveReaderIndex(forwardBy: Frame.headerSize)
    let payload = buffer.readSlice(length: payloadLength)!
    return .frame(
      Frame(
        kind: Frame.Kind(rawValue: kind), flags: Frame.Flags(rawValue: flags), streamID: streamID,
        payload: payload))
  }

  public mutating func decodeLast(buffer: inout ByteBuffer, seenEOF: Bool) throws -> Event? {
    if let event = try decode(buffer: &buffer) { return event }
    // Bytes left over at the end are a truncated frame: the connection is closing anyway, so they
    // are dropped; the connection handler reports the truncation.
    if buffer.readableBytes > 0 || bytesToSkip > 0 {
      throw WireProtocolError.truncatedFrame(bufferedBytes: buffer.readableBytes)
    }
    return nil
  }
}

/// Violations of docs/PROTOCOL.md detected while reading.
public enum WireProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
  case truncatedFrame(bufferedBytes: Int)

  public var description: String {
    switch self {
    case .truncatedFrame(let n):
      "connection closed in the middle of a frame (\(n) bytes of it received)"
    }
  }
}
