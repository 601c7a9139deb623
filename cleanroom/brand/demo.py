"""``cleanroom demo``: a synthetic brand and partner run a real session over loopback TLS.

The synthetic data is deliberately messy (mixed case, stray spaces, phone numbers in five
formats, some invalid values, some emails only as SHA-256) and its attributes are
correlated with the brand's segments, so the lift chart has something to show.
"""

from __future__ import annotations

import hashlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from cleanroom.cli_support import Phases, output_console, write_atomically
from cleanroom.identity import init_certificate
from cleanroom.lists.tables import write_table

SEGMENTS = ("loyal", "lapsed", "prospect")
ATTRIBUTES = (
    "interest_travel",
    "interest_sports",
    "age_25_34",
    "parent",
    "luxury_buyer",
    "pet_owner",
)
# Share of each segment's members (and of non-customers) with each attribute.
_PREVALENCE = {
    "loyal": (0.45, 0.20, 0.30, 0.35, 0.30, 0.30),
    "lapsed": (0.25, 0.30, 0.20, 0.40, 0.10, 0.30),
    "prospect": (0.30, 0.25, 0.40, 0.25, 0.12, 0.30),
    None: (0.20, 0.25, 0.25, 0.30, 0.08, 0.30),
}
_AREA_CODES = ("201", "212", "305", "312", "415", "503", "617", "646", "713", "718", "917")
_DOMAINS = ("gmail.com", "yahoo.com", "outlook.com", "example.org", "mail.example.com")


@dataclass(frozen=True)
class SyntheticLists:
    crm: pd.DataFrame
    audience: pd.DataFrame
    people_in_both: int


def _people(n: int, rng: np.random.Generator) -> pd.DataFrame:
    ids = np.arange(n)
    emails = [f"user{i}.{rng.integers(1000, 9999)}@{_DOMAINS[i % len(_DOMAINS)]}" for i in ids]
    area = rng.choice(_AREA_CODES, size=n)
    exchange = rng.integers(200, 999, size=n)
    subscriber = rng.integers(0, 10000, size=n)
    phones = [f"{a}{e:03d}{s:04d}" for a, e, s in zip(area, exchange, subscriber, strict=True)]
    return pd.DataFrame({"email": emails, "phone": phones})


def _messy_email(email: str, rng: np.random.Generator) -> str:
    roll = rng.random()
    if roll < 0.25:
        return email.upper()
    if roll < 0.45:
        return f"  {email.capitalize()} "
    return email


def _messy_phone(digits: str, rng: np.random.Generator) -> str:
    a, e, line = digits[:3], digits[3:6], digits[6:]
    formats = (
        f"({a}) {e}-{line}",
        f"{a}.{e}.{line}",
        f"+1{a}{e}{line}",
        f"1-{a}-{e}-{line}",
        f"{a} {e} {line}",
    )
    return formats[int(rng.integers(len(formats)))]


def synthetic_lists(brand_records: int, partner_records: int, seed: int = 2026) -> SyntheticLists:
    """A brand CRM and a partner audience sharing about 40% of the partner's people."""
    rng = np.random.default_rng(seed)
    shared = min(brand_records, int(partner_records * 0.4))
    people = _people(brand_records + partner_records - shared, rng)
    brand_people = np.arange(brand_records)
    partner_people = np.concatenate(
        [np.arange(brand_records - shared, brand_records), np.arange(brand_records, len(people))]
    )
    segment = rng.choice(SEGMENTS, size=brand_records, p=(0.3, 0.3, 0.4))

    crm = pd.DataFrame({"customer_id": [f"C{i:07d}" for i in brand_people], "tier": segment})
    emails = [_messy_email(people.email[i], rng) for i in brand_people]
    hashed = [""] * brand_records
    for i in range(brand_records):
        roll = rng.random()
        if roll < 0.10:  # only the SHA-256 is on file for these customers
            hashed[i] = hashlib.sha256(people.email[i].encode()).hexdigest()
            emails[i] = ""
        elif roll < 0.13:
            emails[i] = rng.choice(["n/a", "unknown", "bob at example dot com", "-"])
    crm["email"] = emails
    crm["email_sha256"] = hashed
    crm["phone"] = [
        _messy_phone(people.phone[i], rng) if rng.random() < 0.7 else "" for i in brand_people
    ]

    segment_of = dict(zip(brand_people.tolist(), segment.tolist(), strict=True))
    audience = pd.DataFrame({"user_id": [f"U{i:08d}" for i in partner_people]})
    audience["email"] = [
        _messy_email(people.email[i], rng) if rng.random() < 0.85 else "" for i in partner_people
    ]
    audience["phone"] = [
        _messy_phone(people.phone[i], rng) if rng.random() < 0.6 else "" for i in partner_people
    ]
    for j, attribute in enumerate(ATTRIBUTES):
        shares = np.array([_PREVALENCE[segment_of.get(int(i))][j] for i in partner_people])
        audience[attribute] = rng.random(len(partner_people)) < shares
    shuffle = rng.permutation(len(audience))
    return SyntheticLists(
        crm=crm, audience=audience.iloc[shuffle].reset_index(drop=True), people_in_both=shared
    )


def contract_text(
    brand_fingerprint: str,
    partner_fingerprint: str,
    *,
    contract_id: str = "acme-x-newsco-demo",
    segments: tuple[str, ...] = SEGMENTS,
    attributes: tuple[str, ...] = ATTRIBUTES,
    keys: tuple[str, ...] = ("email", "phone"),
    mechanism: str = "discrete_gaussian",
    epsilon: float = 1.0,
    epsilon_total: float = 10.0,
    delta: float = 1e-9,
    epsilon_match: float | None = 0.35,
    min_set_size: int = 1000,
    min_overlap: int = 50,
    expires: str = "2099-12-31",
) -> str:
    def names(values: tuple[str, ...]) -> str:
        return "[" + ", ".join(f'"{v}"' for v in values) + "]"

    match = "" if epsilon_match is None else f"epsilon_match = {epsilon_match}\n"

    return f"""[contract]
id = "{contract_id}"
expires = {expires}
normalization = "pair-1"
default_region = "US"

[parties.brand]
name = "acme"
certificate_sha256 = "{brand_fingerprint}"

[parties.partner]
name = "newsco"
certificate_sha256 = "{partner_fingerprint}"

[match]
keys = {names(keys)}

[release]
min_set_size = {min_set_size}
min_overlap = {min_overlap}
segments = {names(segments)}
attributes = {names(attributes)}
max_invalid_fraction = 0.2

[privacy]
mechanism = "{mechanism}"
epsilon_per_session = {epsilon}
epsilon_total = {epsilon_total}
delta = {delta}
{match}"""


def brand_config_text(contract: str, listen: str = "127.0.0.1:0", crm: str = "crm.csv") -> str:
    return f"""[server]
listen = "{listen}"
state = "brand-state.db"

[tls]
certificate = "certs/acme.crt"
private_key = "certs/acme.key"

[crm]
path = "{crm}"
columns = {{ email = "email", email_sha256 = "email_sha256", phone = "phone", segment = "tier" }}

[[contracts]]
path = "{contract}"
partner_certificate = "certs/newsco.crt"
"""


def write_demo_files(
    directory: Path, brand_records: int, partner_records: int, *, min_set_size: int = 1000
) -> SyntheticLists:
    """Data, certificates, contract and brand config, as a brand and partner would set them up."""
    directory.mkdir(parents=True, exist_ok=True)
    lists = synthetic_lists(brand_records, partner_records)
    write_table(lists.crm, directory / "crm.csv")
    write_table(lists.audience, directory / "audience.csv")
    certs = directory / "certs"
    if certs.exists():
        shutil.rmtree(certs)
    _, _, brand_fp = init_certificate(certs, "acme")
    _, _, partner_fp = init_certificate(certs, "newsco")
    (directory / "contract.toml").write_text(
        contract_text(brand_fp, partner_fp, min_set_size=min_set_size)
    )
    (directory / "brand.toml").write_text(brand_config_text("contract.toml"))
    for state in ("brand-state.db", "partner-state.db"):
        for suffix in ("", "-wal", "-shm"):
            (directory / (state + suffix)).unlink(missing_ok=True)
    return lists


def run_demo(directory: Path, *, brand_records: int, partner_records: int, quiet: bool) -> None:
    from cleanroom.brand.config import load_server_config
    from cleanroom.brand.servicer import build_server
    from cleanroom.crypto.batches import BatchRunner
    from cleanroom.report.plot import plot_lift
    from cleanroom.report.render import print_report, quality_table
    from cleanroom.store.state import StateStore
    from cleanroom.transport.partner import PARAMETERS, PartnerClient

    console = output_console(quiet=quiet)
    started = time.perf_counter()
    lists = write_demo_files(directory, brand_records, partner_records)
    console.print(
        f"[bold]cleanroom demo[/] in {directory}/: brand CRM {brand_records} rows (crm.csv), "
        f"partner audience {partner_records} rows (audience.csv), {lists.people_in_both} people in both"
    )
    config = load_server_config(directory / "brand.toml")
    engine = BatchRunner()
    with console.status("brand server: reading and hashing the CRM"):
        server, port = build_server(config, engine=engine)
    try:
        console.print(f"brand server listening on 127.0.0.1:{port} with mutual TLS")
        client = PartnerClient(
            f"127.0.0.1:{port}",
            names=PARAMETERS,
            contract=directory / "contract.toml",
            certificate=directory / "certs/newsco.crt",
            private_key=directory / "certs/newsco.key",
            server_certificate=directory / "certs/acme.crt",
            state=directory / "partner-state.db",
        )
        phases = Phases(quiet)
        with phases.running():
            report = client.run(directory / "audience.csv", progress=phases.advance)
    finally:
        server.stop(grace=1).wait()
        engine.close()
    brand_copy = StateStore(directory / "brand-state.db").report(report.session_id)
    write_atomically(directory / "report.json", report.to_json())
    chart = plot_lift(report.to_dict(), directory / "lift.png")
    print_report(report.to_dict(), console)
    console.print(
        quality_table(report.input_quality, title="Partner input quality (stays with the partner)")
    )
    same = "identical" if brand_copy == report else "DIFFERENT"
    console.print(
        f"brand and partner hold {same} reports (transcript {report.to_dict()['transcript_sha256'][:16]}...)"
    )
    console.print(
        f"wrote {directory / 'report.json'} and {chart} in {time.perf_counter() - started:.1f} s"
    )
    console.print(
        "next: cleanroom-client lookalike --report "
        f"{directory}/report.json --audience {directory}/audience.csv --size 1000 --out {directory}/lookalike.csv"
    )
