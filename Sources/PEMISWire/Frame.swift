public import NIOCore

/// One PEMIS wire frame: a 10-byte header and a payload (docs/PROTOCOL.md, "Frames").
///
/// ```
/// +----------------+--------+--------+----------------+------------------------+
/// | length: u32 BE | kind u8| flags u8| stream id u32 BE| payload (length bytes) |
/// +----------------+--------+--------+----------------+------------------------+
/// ```
/// `length` counts the payload only, so the header can be checked against the size limit before
/// a single payload byte is buffered.
public struct Frame: Hashable, Sendable {
  /// Size of the fixed header that precedes every payload.
  public static let headerSize = 10

  public var kind: Kind
  public var flags: Flags
  public var streamID: UInt32
  public var payload: ByteBuffer

  public init(kind: Kind, flags: Flags = [], streamID: UInt32, payload: ByteBuffer) {
    self.kind = kind
    self.flags = flags
    self.streamID = streamID
    self.payload = payload
  }

  /// The frame kinds of protocol version 1. Unknown kinds are carried through as their raw value
  /// so a receiver can ignore them, which is what lets later versions add kinds.
  public struct Kind: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// Stream 0. First frame on each side: versions, limits, windows.
    public static let hello = Kind(rawValue: 0x01)
    /// Client to server. Opens a stream: method, metadata, deadline.
    public static let callStart = Kind(rawValue: 0x02)
    /// Server to client. The server's initial metadata.
    public static let responseStart = Kind(rawValue: 0x03)
    /// Either direction. One serialized request or response message.
    public static let message = Kind(rawValue: 0x04)
    /// Client to server. The client will send no more messages on this stream.
    public static let closeSend = Kind(rawValue: 0x05)
    /// Server to client. Final status and trailers; the stream is over.
    public static let callEnd = Kind(rawValue: 0x06)
    /// Client to server. The client abandons the call.
    public static let cancel = Kind(rawValue: 0x07)
    /// Stream 0. Liveness check; answered with the same 8 bytes and the ACK flag.
    public static let ping = Kind(rawValue: 0x08)
    /// Stream 0. The sender accepts no stream above `last_stream_id` and will close.
    public static let goAway = Kind(rawValue: 0x09)
    /// Either direction. Grants the peer more MESSAGE frames on one stream.
    public static let windowUpdate = Kind(rawValue: 0x0A)

    public var description: String {
      switch self {
      case .hello: "HELLO"
      case .callStart: "CALL_START"
      case .responseStart: "RESPONSE_START"
      case .message: "MESSAGE"
      case .closeSend: "CLOSE_SEND"
      case .callEnd: "CALL_END"
      case .cancel: "CANCEL"
      case .ping: "PING"
      case .goAway: "GOAWAY"
      case .windowUpdate: "WINDOW_UPDATE"
      default: "UNKNOWN(0x\(String(rawValue, radix: 16)))"
      }
    }
  }

  /// Per-kind flag bits.
  public struct Flags: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    /// On PING: this frame answers a PING.
    public static let ack = Flags(rawValue: 0x01)
  }
}

extension Frame {
  /// Appends this frame's header and payload to `buffer`.
  public func encode(into buffer: inout ByteBuffer) {
    Frame.encode(kind: kind, flags: flags, streamID: streamID, payload: payload, into: &buffer)
  }

  /// Appends a frame without building a `Frame` first (the hot path of the transport).
  @inlinable
  public static func encode(
    kind: Kind, flags: Flags = [], streamID: UInt32, payload: ByteBuffer, into buffer: inout ByteBuffer
  ) {
    buffer.reserveCapacity(minimumWritableBytes: Frame.headerSize + payload.readableBytes)
    Self.writeHeader(
      kind: kind, flags: flags, streamID: streamID, length: payload.readableBytes, into: &buffer)
    var payload = payload
    buffer.writeBuffer(&payload)
  }

  /// Appends a frame whose payload is a byte array.
  @inlinable
  public static func encode(
    kind: Kind, flags: Flags = [], streamID: UInt32, bytes: some Collection<UInt8>,
    into buffer: inout ByteBuffer
  ) {
    buffer.reserveCapacity(minimumWritableBytes: Frame.headerSize + bytes.count)
    Self.writeHeader(kind: kind, flags: flags, streamID: streamID, length: bytes.count, into: &buffer)
    buffer.writeBytes(bytes)
  }

  @inlinable
  static func writeHeader(
    kind: Kind, flags: Flags, streamID: UInt32, length: Int, into buffer: inout ByteBuffer
  ) {
    buffer.writeMultipleIntegers(
      UInt32(length), kind.rawValue, flags.rawValue, streamID, endianness: .big)
  }
}
