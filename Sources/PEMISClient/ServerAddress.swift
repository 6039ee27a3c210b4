/// A server to talk to, as the user writes it: "HOST:PORT", "[IPv6]:PORT" or "HOST" (port 7400).
public struct ServerAddress: Sendable, Equatable, CustomStringConvertible {
  public static let defaultPort = 7400
  /// Where the client tools connect when neither --server nor PEMIS_SERVER says otherwise.
  public static let `default` = ServerAddress(host: "127.0.0.1", port: defaultPort)

  public var host: String
  public var port: Int

  public init(host: String, port: Int) {
    self.host = host
    self.port = port
  }

  /// Parses an address; the error names what is wrong.
  public init(parsing text: String) throws(AddressError) {
    let text = text.trimmingCharacters(in: .whitespaces)
    guard !text.isEmpty else { throw AddressError(text: text, reason: "is empty") }
    var host: Substring
    var portText: Substring?
    if text.hasPrefix("[") {
      guard let close = text.firstIndex(of: "]") else { throw AddressError(text: text, reason: "has '[' without ']'") }
      host = text[text.index(after: text.startIndex)..<close]
      let rest = text[text.index(after: close)...]
      if !rest.isEmpty {
        guard rest.hasPrefix(":") else { throw AddressError(text: text, reason: "needs ':' after ']'") }
        portText = rest.dropFirst()
      }
    } else if let colon = text.lastIndex(of: ":") {
      guard text.firstIndex(of: ":") == colon else {
        throw AddressError(text: text, reason: "looks like an IPv6 address: write it as [ADDRESS]:PORT")
      }
      host = text[..<colon]
      portText = text[text.index(after: colon)...]
    } else {
      host = Substring(text)
    }
    guard !host.isEmpty else { throw AddressError(text: text, reason: "has no host") }
    var port = Self.defaultPort
    if let portText {
      guard let value = Int(portText), (1...65535).contains(value) else {
        throw AddressError(text: text, reason: "has port '\(portText)', which is not a number from 1 to 65535")
      }
      port = value
    }
    self.init(host: String(host), port: port)
  }

  public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}

public struct AddressError: Error, CustomStringConvertible, Equatable {
  public var text: String
  public var reason: String
  public var description: String { "server address '\(text)' \(reason)" }
}

extension String {
  fileprivate func trimmingCharacters(in set: Set<Character>) -> String {
    String(self.drop(while: { set.contains($0) }).reversed().drop(while: { set.contains($0) }).reversed())
  }
}

extension Set where Element == Character {
  fileprivate static var whitespaces: Set<Character> { [" ", "\t", "\n"] }
}
