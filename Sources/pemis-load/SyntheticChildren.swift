import ArgumentParser
import Foundation
import PEMISDomain

/// Synthetic children with realistic fields and valid, unique resident ID numbers: child `i`
/// of a run gets a number no other `i` gets (division, birth day and sequence are read off `i`),
/// so seeded districts and import files never collide by accident.
enum SyntheticChildren {
  /// Binhai New Area and neighbouring Tianjin districts.
  static let divisions = [
    "120116", "120101", "120102", "120103", "120104", "120105", "120106", "120110", "120111", "120112", "120113",
    "120114", "120115", "120117", "120118", "120119",
  ]
  static let surnames = Array("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏薛叶阎余潘杜戴夏钟汪田任姜范方石姚谭廖邹熊金陆郝孔白崔康毛邱秦江史顾侯邵孟龙万段")
  static let given = Array("明华伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛超霞平刚桂梓涵子轩浩宇欣怡雨萱一诺梓萱思远佳琪俊熙语桐若曦沐辰")
  /// `given` without repeats, for names that must differ.
  static let distinctGiven: [Character] = {
    var seen = Set<Character>()
    return given.filter { seen.insert($0).inserted }
  }()
  /// Birth days spread over four school years, so children are 3 to 6 on the first of September 2026.
  static let firstBirthDay = CalendarDate(year: 2020, month: 9, day: 1).dayNumber
  static let birthDays = 1460

  struct Child {
    var name: String
    var gender: Gender
    var birthDate: CalendarDate
    var idNumber: String
    var division: String
    var guardianName: String
    var guardianRelation: String
    var phone: String

    /// The child as a record entered on 1 September 2026, under its own resident ID unless
    /// another document is given (load runs plant wrong or missing ones on purpose).
    func record(type: IDDocumentType = .residentID, number: String? = nil, onlyChild: Bool = false) -> ChildRecord {
      ChildRecord(
        name: name, gender: gender, birthDate: birthDate, idDocumentType: type, idDocumentNumber: number ?? idNumber, nationality: "CHN",
        ethnicity: "01", birthPlace: division, householdRegister: division, householdType: "resident", hmtStatus: "none", health: "healthy",
        onlyChild: onlyChild, guardians: [.init(name: guardianName, relation: guardianRelation, phone: phone)],
        entryDate: CalendarDate(year: 2026, month: 9, day: 1))
    }
  }

  static func child(_ i: Int) -> Child {
    let sequence = i % 1000
    let birth = CalendarDate(dayNumber: firstBirthDay + (i / 1000) % birthDays)
    let division = divisions[(i / (1000 * birthDays)) % divisions.count]
    let body = division + pad(birth.year, 4) + pad(birth.month, 2) + pad(birth.day, 2) + pad(sequence, 3)
    let id = body + String(IDDocuments.checkCharacter(Array(body))!)
    let gender: Gender = sequence % 2 == 1 ? .male : .female
    var random = SplitMix(seed: UInt64(i))
    let surname = surnames[random.next(surnames.count)]
    let name = String(surname) + String(given[random.next(given.count)]) + (random.next(2) == 0 ? "" : String(given[random.next(given.count)]))
    let father = random.next(3) != 0
    return Child(
      name: name, gender: gender, birthDate: birth, idNumber: id, division: division,
      guardianName: father ? String(surname) + String(given[random.next(given.count)]) + String(given[random.next(given.count)])
        : String(surnames[random.next(surnames.count)]) + String(given[random.next(given.count)]),
      guardianRelation: father ? "father" : "mother", phone: "13" + pad(100_000_000 + (i * 7919) % 900_000_000, 9))
  }

  static func pad(_ n: Int, _ width: Int) -> String {
    let s = String(n)
    return String(repeating: "0", count: max(0, width - s.count)) + s
  }

  /// A small, fast, reproducible generator (SplitMix64).
  struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 &+ 1 }
    mutating func next(_ bound: Int) -> Int {
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
      z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
      return Int((z ^ (z >> 31)) % UInt64(bound))
    }
  }
}

/// `pemis-load children-csv`: a child template file of synthetic children, for imports and the
/// import benchmark (tools/bench-import.sh).
struct ChildrenCSV: AsyncParsableCommand {
  static let configuration = CommandConfiguration(
    commandName: "children-csv", abstract: "Write a child template CSV of synthetic children with valid, unique ID numbers.")
  @Option(help: "Rows.") var count: Int = 100
  @Option(help: "Index of the first child (files with different ranges never share a child).") var first: Int = 0
  @Option(help: "Class id for every row (empty: no class).") var classID: String = ""
  @Option(help: "Entry date.") var entered: String = "2026-09-01"
  @Option(help: "Output file (default standard output).") var output: String?

  func run() async throws {
    var text = ChildTemplate.headerLine + "\n"
    text.reserveCapacity(count * 200)
    for i in first..<(first + count) {
      let c = SyntheticChildren.child(i)
      let fields = [
        c.name, c.gender.rawValue, c.birthDate.description, "resident_id", c.idNumber, "CHN", "01", c.division, c.division, "resident", "none",
        "healthy", i % 3 == 0 ? "yes" : "no", c.guardianName, c.guardianRelation, c.phone, "", "", "", entered, classID,
      ]
      text += fields.joined(separator: ",") + "\n"
    }
    if let output {
      try Data(text.utf8).write(to: URL(fileURLWithPath: output))
    } else {
      FileHandle.standardOutput.write(Data(text.utf8))
    }
  }
}
