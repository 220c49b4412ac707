"""List the MIDI ports rvaed can send to and receive from (names to use in port specs: any
part of a name picks the first port that contains it)."""

from rvaed.engine import midiapi

HELP = "list MIDI ports"


def add_arguments(parser) -> None:
    parser.add_argument("--api", choices=midiapi.API_NAMES, default="auto",
                        help="MIDI system to ask (default: auto)")


def run(args) -> int:
    for direction, title in (("output", "outputs (rvaed sends to)"),
                             ("input", "inputs (rvaed listens to)")):
        ports = midiapi.list_ports(args.api, direction)
        print(f"MIDI {title}:")
        for port in ports:
            print(f"  {port}")
        if not ports:
            print("  (none)")
    return 0
