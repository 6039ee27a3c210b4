internal import Foundation
public import GRPCCore
internal import SwiftProtobuf

/// Protocol constants of docs/PROTOCOL.md.
public enum WireProtocol {
  /// The protocol version this implementation speaks (docs/PROTOCOL.md, "Handshake").
  public static let version: UInt32 = 1
  /// Default limit on a frame's payload: 4 MiB.
  public static let defaultMaxFrameSize = 4 * 1024 * 1024
  /// Default number of MESSAGE frames a peer may send on one stream before it needs a
  /// WINDOW_UPDATE.
  public static let defaultInitialStreamWindow = 64
  /// Default bound on the calls open at once on one connection.
  public static let defaultMaxConcurrentStreams = 100
}

/// The limits one side announces in its HELLO and enforces on what it receives.
public struct WireLimits: Hashable, Sendable {
  /// Largest frame payload accepted, in bytes. Default 4 MiB.
  public var maxFrameSize: Int
  /// MESSAGE frames the peer may send per stream before waiting for a WINDOW_UPDATE. Default 64.
  public var initialStreamWindow: Int
  /// Server: calls open at once on one connection. Default 100. Ignored on the client.
  public var maxConcurrentStreams: Int

  public init(
    maxFrameSize: Int = WireProtocol.defaultMaxFrameSize,
    initialStreamWindow: Int = WireProtocol.defaultInitialStreamWindow,
    maxConcurrentStreams: Int = WireProtocol.defaultMaxConcurrentStreams
  ) {
    self.maxFrameSize = maxFrameSize
    self.initialStreamWindow = initialStreamWindow
    self.maxConcurrentStreams = maxConcurrentStreams
  }

  public static var defaults: Self { Self() }
}

/// What the peer announced in its HELLO.
struct PeerSettings: Sendable, Equatable {
  var version: UInt32
  var maxFrameSize: Int
  var initialStreamWindow: Int
  var maxConcurrentStreams: Int
  var agent: String
}

// MARK: - Metadata on the wire

extension Metadata {
  /// Metadata as wire entries: "-bin" keys carry bytes, all others text.
  var wireEntries: [Pemis_Wire_V1_MetadataEntry] {
    self.map { entry in
      var wire = Pemis_Wire_V1_MetadataEntry()
      wire.key = entry.key
      switch entry.value {
      case .string(let text): wire.text = text
      case .binary(let bytes): wire.binary = Data(bytes)
      }
      return wire
    }
  }

  init(wireEntries: [Pemis_Wire_V1_MetadataEntry]) {
    self.init()
    for entry in wireEntries {
      switch entry.value {
      case .text(let text): self.addString(text, forKey: entry.key)
      case .binary(let data): self.addBinary(Array(data), forKey: entry.key)
      case nil:
        if entry.key.hasSuffix("-bin") { self.addBinary([], forKey: entry.key) } else { self.addString("", forKey: entry.key) }
      }
    }
  }
}

// MARK: - Deadlines

/// Reads and writes gRPC's "grpc-timeout" metadata value ("100m", "5S"), which GRPCCore uses to
/// pass a call's remaining time to and from transports. On the wire the deadline is a field of
/// CALL_START in microseconds instead.
enum GRPCTimeout {
  static let key = "grpc-timeout"

  static func microseconds(from value: String) -> UInt64? {
    guard value.count >= 2, let unit = value.last, let amount = UInt64(value.dropLast()) else {
      return nil
    }
    let (result, overflow): (UInt64, Bool)
    switch unit {
    case "H": (result, overflow) = amount.multipliedReportingOverflow(by: 3_600_000_000)
    case "M": (result, overflow) = amount.multipliedReportingOverflow(by: 60_000_000)
    case "S": (result, overflow) = amount.multipliedReportingOverflow(by: 1_000_000)
    case "m": (result, overflow) = amount.multipliedReportingOverflow(by: 1_000)
    case "u": (result, overflow) = (amount, false)
    case "n": (result, overflow) = ((amount + 999) / 1_000, false)
    default: return nil
    }
    return overflow ? UInt64.max : max(result, 1)
  }

  /// Encodes microseconds in the largest unit that keeps the value within gRPC's 8 digits.
  static func encode(microseconds: UInt64) -> String {
    if microseconds < 100_000_000 { return "\(microseconds)u" }
    let millis = (microseconds + 999) / 1_000
    if millis < 100_000_000 { return "\(millis)m" }
    let seconds = (microseconds + 999_999) / 1_000_000
    if seconds < 100_000_000 { return "\(seconds)S" }
    return "\(min((seconds + 3_599) / 3_600, 99_999_999))H"
  }
}

extension Duration {
  var wholeMicroseconds: Int64 {
    let (seconds, attoseconds) = self.components
    return seconds * 1_000_000 + attoseconds / 1_000_000_000_000
  }
}

extension RPCError.Code {
  /// gRPC's spelling of the code ("DEADLINE_EXCEEDED"), as logs, audit entries and other gRPC
  /// tools show it.
  public var grpcName: String {
    var name = ""
    for character in String(describing: self) {
      if character.isUppercase { name += "_" }
      name += character.uppercased()
    }
    return name
  }
}
