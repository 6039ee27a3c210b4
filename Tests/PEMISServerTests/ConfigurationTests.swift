import Foundation
import Logging
import Testing

@testable import PEMISServer

@Suite("Server configuration")
struct ConfigurationTests {
  func file(_ json: String) throws -> String {
    let path = FileManager.default.temporaryDirectory.appendingPathComponent("pemis-\(UUID()).json").path
    try json.write(toFile: path, atomically: true, encoding: .utf8)
    return path
  }

  @Test("defaults are the documented ones and valid")
  func defaults() throws {
    let defaults = ServerConfiguration.defaults
    #expect(defaults.host == "127.0.0.1")
    #expect(defaults.port == 7400)
    #expect(defaults.dataDirectory == "./data")
    #expect(defaults.maxFrameSize == 4 * 1024 * 1024)
    try defaults.validate()
  }

  @Test("the shipped Config/pemis-server.json loads and matches the defaults")
  func shippedFile() throws {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
      .deletingLastPathComponent()
    let loaded = try ServerConfiguration.load(
      file: root.appendingPathComponent("Config/pemis-server.json").path, environment: [:])
    #expect(loaded == .defaults)
  }

  @Test("file, then environment: each layer overrides the one before")
  func layering() throws {
    let path = try file(#"{"port": 9000, "host": "0.0.0.0", "logLevel": "debug", "diagnostics": false}"#)
    let fromFile = try ServerConfiguration.load(file: path, environment: [:])
    #expect(fromFile.port == 9000)
    #expect(fromFile.host == "0.0.0.0")
    #expect(fromFile.logLevel == .debug)
    #expect(fromFile.diagnostics == false)
    let withEnvironment = try ServerConfiguration.load(
      file: path, environment: ["PEMIS_PORT": "9100", "PEMIS_DATA_DIR": "/srv/pemis", "PEMIS_GRACE_PERIOD": "2.5"])
    #expect(withEnvironment.port == 9100)
    #expect(withEnvironment.host == "0.0.0.0")
    #expect(withEnvironment.dataDirectory == "/srv/pemis")
    #expect(withEnvironment.gracePeriodSeconds == 2.5)
  }

  @Test("a misspelt key in the file is refused, naming it and the file")
  func unknownKey() throws {
    let path = try file(#"{"prot": 9000}"#)
    let error = #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: path, environment: [:]) }
    #expect(error?.key == "prot")
    #expect(error?.source == path)
    #expect(error?.description.contains("is not a setting") == true)
  }

  @Test("a value of the wrong kind is refused, naming the key and where it came from")
  func badValues() throws {
    let error = #expect(throws: ConfigurationError.self) {
      try ServerConfiguration.load(file: nil, environment: ["PEMIS_PORT": "seventy"])
    }
    #expect(error?.key == "port")
    #expect(error?.source == "environment variable PEMIS_PORT")
    #expect(throws: ConfigurationError.self) {
      try ServerConfiguration.load(file: nil, environment: ["PEMIS_LOG_LEVEL": "loud"])
    }
    #expect(throws: ConfigurationError.self) {
      try ServerConfiguration.load(file: nil, environment: ["PEMIS_DIAGNOSTICS": "maybe"])
    }
    #expect(throws: ConfigurationError.self) { try ServerConfiguration.load(file: try file("[1,2]"), environment: [:]) }
  }

  @Test("http2Port: off by default; file, environment and 'off' each set it; bad values name the key")
  func http2Port() throws {
    #expect(try ServerConfiguration.load(file: nil, environment: [:]).http2Port == nil)
    let path = try file(#"{"http2Port": 7401}"#)
    #expect(try ServerConfiguration.load(file: path, environment: [:]).http2Port == 7401)
    #expect(try ServerConfiguration.load(file: path, environment: ["PEMIS_HTTP2_PORT": "0"]).http2Port == 0)
    #expect(try ServerConfiguration.load(file: path, environment: ["PEMIS_HTTP2_PORT": "off"]).http2Port == nil)
    let error = #expect(throws: ConfigurationError.self) {
      try ServerConfiguration.load(file: nil, environment: ["PEMIS_HTTP2_PORT": "http2"])
    }
    #expect(error?.key == "http2Port")
    #expect(error?.source == "environment variable PEMIS_HTTP2_PORT")
    #expect(error?.message == "must be a whole number or off, got 'http2'")

    var samePort = ServerConfiguration.defaults
    samePort.http2Port = samePort.port
    let clash = #expect(throws: ConfigurationError.self) { try samePort.validate() }
    #expect(clash?.key == "http2Port")
    #expect(clash?.message.contains("must differ from port (7400)") == true)
    var bothFree = ServerConfiguration.defaults
    bothFree.port = 0
    bothFree.http2Port = 0
    try bothFree.validate()
  }

  @Test("a named configuration file must exist")
  func missingFile() {
    let error = #expect(throws: ConfigurationError.self) {
      try ServerConfiguration.load(file: "/nonexistent/pemis.json", environment: [:])
    }
    #expect(error?.key == "--config")
  }

  @Test(
    "values out of range are refused by validate()",
    arguments: [
      ("port", "70000"), ("maxFrameSize", "100"), ("maxFrameSize", "999999999"),
      ("maxConcurrentCallsPerConnection", "0"), ("idleTimeoutSeconds", "0"), ("gracePeriodSeconds", "-1"),
      ("host", ""), ("http2Port", "65536"), ("http2Port", "-1"),
    ])
  func outOfRange(key: String, value: String) throws {
    var configuration = ServerConfiguration.defaults
    try configuration.set(key, text: value, source: "test")
    let error = #expect(throws: ConfigurationError.self) { try configuration.validate() }
    #expect(error?.key == key)
  }
}
