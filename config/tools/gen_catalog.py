#!/usr/bin/env python3
"""Generate config/src/catalog/defs.rs from the real Dovecot 2.3 `doveconf`.

Everything is determined empirically from the installed Dovecot (Debian's
2.3.19.1 + Pigeonhole 0.5.19 on the machine this was written on):

* names and defaults: `doveconf -a` on an (almost) empty config, with test
  blocks (`service foo {}`, `namespace foo { mailbox m {} }`, `passdb {}`, ...)
  to get the generic defaults of every block type;
* kinds: one doveconf run per probe value and setting (`foo`, `100ms`, `099`),
  classified by the error message doveconf prints;
* Str vs StrVars: inside named sections `doveconf -n` always prints STR_VARS
  fields; for top-level settings (and as a cross-check everywhere) the
  `struct setting_define` tables compiled into the installed binaries are read
  with `readelf` (type enum of 2.3.19: BOOL, UINT, UINT_OCT, TIME, TIME_MSECS,
  SIZE, IN_PORT, STR, STR_VARS, ENUM, DEFLIST, DEFLIST_UNIQUE, STRLIST, ALIAS);
* enum values: colon-joined default strings found in the binaries, each value
  verified to be accepted by doveconf.

Usage: gen_catalog.py [--out PATH] [--doveconf PATH] [--report PATH]
"""

import argparse
import glob
import itertools
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "src", "catalog", "defs.rs")

# Debian-patched defaults replaced by upstream / RHEL values (our product
# targets RHEL). Everything else keeps the value doveconf prints.
OVERRIDES = {
    "base_dir": "/var/run/dovecot",
    "libexec_dir": "/usr/libexec/dovecot",
    "mail_plugin_dir": "/usr/lib64/dovecot",
    "login_plugin_dir": "/usr/lib64/dovecot/login",
    "protocols": "imap pop3 lmtp",
    "login_greeting": "Dovecot ready.",
    "managesieve_implementation_string": "Dovecot Pigeonhole",
    # Debian's values come from running Pigeonhole's engine (dump-capability).
    "managesieve_sieve_capability": "",
    "managesieve_notify_capability": "",
}

# Defaults of SET_FLAG_HIDDEN settings (never printed by `doveconf -a`), from
# src/lib-storage/mail-storage-settings.c of 2.3.19, written the way doveconf
# prints them. Each one is verified below: setting it to this value makes
# `doveconf -n` print nothing.
HIDDEN_DEFAULTS = {
    "mail_cache_unaccessed_field_drop": "30 days",
    "mail_cache_record_max_size": "64 k",
    "mail_cache_max_size": "1 G",
    "mail_cache_min_mail_count": "0",
    "mail_cache_purge_min_size": "32 k",
    "mail_cache_purge_delete_percentage": "20",
    "mail_cache_purge_continued_percentage": "200",
    "mail_cache_purge_header_continue_count": "4",
    "mail_index_rewrite_min_log_bytes": "8 k",
    "mail_index_rewrite_max_log_bytes": "128 k",
    "mail_index_log_rotate_min_size": "32 k",
    "mail_index_log_rotate_max_size": "1 M",
    "mail_index_log_rotate_min_age": "5 mins",
    "mail_index_log2_max_age": "2 days",
}

# Setting type enum of Dovecot 2.3.19 (lib-settings/settings-parser.h).
SET_TYPES = ["BOOL", "UINT", "UINT_OCT", "TIME", "TIME_MSECS", "SIZE",
             "IN_PORT", "STR", "STR_VARS", "ENUM", "DEFLIST",
             "DEFLIST_UNIQUE", "STRLIST", "ALIAS"]
ELF_KIND = {"BOOL": "Bool", "UINT": "Uint", "UINT_OCT": "Octal",
            "TIME": "Time", "TIME_MSECS": "TimeMsecs", "SIZE": "Size",
            "IN_PORT": "Port", "STR": "Str", "STR_VARS": "StrVars",
            "ENUM": "Enum"}

# Block types: name -> (how to wrap one `key = value` line, how the block
# appears in a `doveconf -a` dump: path of (type, name) pairs).
WRAP = {
    "GLOBAL": ("{kv}", ()),
    "SERVICE": ("service foo {{\n{kv}}}\n", (("service", "foo"),)),
    "UNIX_LISTENER": ("service foo {{\nunix_listener u {{\n{kv}}}\n}}\n",
                      (("service", "foo"), ("unix_listener", "u"))),
    "FIFO_LISTENER": ("service foo {{\nfifo_listener f {{\n{kv}}}\n}}\n",
                      (("service", "foo"), ("fifo_listener", "f"))),
    "INET_LISTENER": ("service foo {{\ninet_listener i {{\n{kv}}}\n}}\n",
                      (("service", "foo"), ("inet_listener", "i"))),
    "NAMESPACE": ("namespace foo {{\n{kv}}}\n", (("namespace", "foo"),)),
    "MAILBOX": ("namespace foo {{\nmailbox m {{\n{kv}}}\n}}\n",
                (("namespace", "foo"), ("mailbox", "m"))),
    "PASSDB": ("passdb {{\n{kv}}}\n", (("passdb", ""),)),
    "USERDB": ("userdb {{\n{kv}}}\n", (("userdb", ""),)),
    "METRIC": ("metric m {{\n{kv}}}\n", (("metric", "m"),)),
    "EVENT_EXPORTER": ("event_exporter e {{\n{kv}}}\n",
                       (("event_exporter", "e"),)),
}
SECTIONS = [s for s in WRAP if s != "GLOBAL"]

# The field holding a block's own name/path. Setting it inside the block is
# accepted and renames the block, so it is not listed as a field.
KEY_FIELD = {"SERVICE": "name", "UNIX_LISTENER": "path",
             "FIFO_LISTENER": "path", "INET_LISTENER": "name",
             "NAMESPACE": "name", "MAILBOX": "name", "METRIC": "metric_name",
             "EVENT_EXPORTER": "name"}

LINE_ERR = re.compile(r"Fatal: Error in configuration file \S+ line \d+: (.*)")


class Doveconf:
    def __init__(self, path):
        self.path = path
        self.tmp = tempfile.mkdtemp(prefix="gen_catalog.")
        self.counter = itertools.count(1)
        self.n = 0

    def run(self, text, flag="-n"):
        self.n = next(self.counter)
        fn = os.path.join(self.tmp, "t%d.conf" % self.n)
        with open(fn, "w") as f:
            f.write(text)
        p = subprocess.run([self.path, flag, "-c", fn], capture_output=True,
                           text=True)
        os.unlink(fn)
        return p.stdout, p.stderr

    def line_error(self, text):
        """The parse error doveconf reports for a line, or None."""
        _, err = self.run(text)
        m = LINE_ERR.search(err)
        return m.group(1) if m else None


# ---------------------------------------------------------------- dump parser

def unquote(v):
    if len(v) >= 2 and v[0] == '"' and v[-1] == '"':
        return re.sub(r'\\(.)', r'\1', v[1:-1])
    return v


class Node:
    def __init__(self, btype="", name=""):
        self.btype, self.name = btype, name
        self.settings = {}      # key -> value, in printed order
        self.blocks = []        # child Nodes, in printed order

    def find(self, path):
        node = self
        for btype, name in path:
            node = next((b for b in node.blocks
                         if b.btype == btype and b.name == name), None)
            if node is None:
                return None
        return node


def parse_dump(text):
    root = Node()
    stack = [root]
    for line in text.splitlines():
        s = line.strip()
        if not s or s.startswith("#"):
            continue
        m = re.match(r"^([^\s=]+) =(?: (.*))?$", s)
        if m:
            stack[-1].settings[m.group(1)] = unquote(m.group(2) or "")
            continue
        m = re.match(r"^(\S+)(?: (.*))? \{$", s)
        if m:
            node = Node(m.group(1), m.group(2) or "")
            stack[-1].blocks.append(node)
            stack.append(node)
            continue
        if s == "}":
            stack.pop()
            continue
        raise ValueError("unparsable doveconf line: %r" % line)
    return root


# ----------------------------------------------------------- binary tables

def elf_setting_defines(paths):
    """Read `struct setting_define` arrays out of ELF binaries.

    2.3.19 layout (x86_64): {enum type; enum flags; const char *key;
    size_t offset; const struct setting_parser_info *list_info;} = 32 bytes.
    Returns a list of tables, each a list of (key, type name, hidden)."""
    tables = []
    for path in paths:
        data = open(path, "rb").read()
        secs = []
        out = subprocess.run(["readelf", "-S", "-W", path],
                             capture_output=True, text=True).stdout
        for l in out.splitlines():
            m = re.match(r"\s*\[\s*\d+\]\s+(\S+)\s+(\S+)\s+([0-9a-f]+)\s+"
                         r"([0-9a-f]+)\s+([0-9a-f]+)", l)
            if m and m.group(2) != "NOBITS":
                secs.append((int(m.group(3), 16), int(m.group(4), 16),
                             int(m.group(5), 16)))

        def v2o(v):
            for a, o, s in secs:
                if a and a <= v < a + s:
                    return o + v - a
            return None

        rel = {}
        out = subprocess.run(["readelf", "-r", "-W", path],
                             capture_output=True, text=True).stdout
        for l in out.splitlines():
            p = l.split()
            if len(p) >= 4 and p[2] == "R_X86_64_RELATIVE":
                rel[int(p[0], 16)] = int(p[3], 16)

        def cstr(v):
            o = v2o(v)
            if o is None:
                return None
            e = data.find(b"\0", o)
            try:
                return data[o:e].decode()
            except UnicodeDecodeError:
                return None

        prev = None
        for addr in sorted(rel):
            key = cstr(rel[addr])
            if not key or not re.fullmatch(r"[a-z][a-z0-9_]*", key):
                continue
            o = v2o(addr - 8)
            if o is None:
                continue
            t, fl = struct.unpack("<II", data[o:o + 8])
            if t >= len(SET_TYPES) or fl > 1:
                continue
            if prev is None or addr != prev + 32:
                tables.append([])
            tables[-1].append((key, SET_TYPES[t], fl == 1))
            prev = addr
    return [t for t in tables if len(t) >= 2]


def colon_strings(paths):
    out = set()
    for path in paths:
        p = subprocess.run(["strings", "-n", "3", path], capture_output=True,
                           text=True, errors="replace")
        for s in p.stdout.splitlines():
            if re.fullmatch(r"[A-Za-z0-9_.+-]+(:[A-Za-z0-9_.+-]+)+", s):
                out.add(s)
    return out


# ------------------------------------------------------------------- kinds

def classify(dc, section, key):
    """Return (kind, note) for one setting from doveconf's error messages."""
    wrap = WRAP[section][0]

    def err(value):
        return dc.line_error(wrap.format(kv="%s = %s\n" % (key, value)))

    e = err("foo")
    if e is None:
        return "Str", None
    if e.startswith("Invalid size:"):
        return "Size", None
    if e.startswith("Invalid boolean value:"):
        return "Bool", None
    if e.startswith("Invalid time interval:"):
        e2 = err("100ms")
        if e2 is None:
            return "TimeMsecs", None
        if e2.startswith("Milliseconds not supported"):
            return "Time", None
        return "Time", "100ms gave: " + e2
    if e.startswith("Invalid number foo: Not a valid number"):
        e2 = err("099")
        if e2 is None:
            return "Uint", None
        if e2 == "Invalid number: 099":
            return "Octal", None
        return "Uint", "099 gave: " + e2
    if e.startswith("Invalid port number"):
        return "Port", None
    if e == "Invalid value: foo":
        return "Enum", None
    return "Str", "foo gave: " + e


def enum_values(dc, section, key, default, candidates):
    wrap = WRAP[section][0]
    ok = []
    for cand in sorted(candidates, key=lambda c: (-len(c.split(":")), c)):
        vals = cand.split(":")
        if vals[0] != default:
            continue
        if all(dc.line_error(wrap.format(kv="%s = %s\n" % (key, v))) is None
               for v in vals):
            ok.append(vals)
    if not ok:
        return None
    best = ok[0]
    for vals in ok[1:]:
        if set(vals) - set(best):
            raise SystemExit("ambiguous enum candidates for %s/%s: %r"
                             % (section, key, ok))
    return best


# ------------------------------------------------------------------ output

def rs(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def kind_rs(kind, values):
    if kind == "Enum":
        return "Enum(&[" + ", ".join(rs(v) for v in values) + "])"
    return kind


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--doveconf", default="/usr/bin/doveconf")
    ap.add_argument("--libdir", default="/usr/lib/dovecot")
    ap.add_argument("--report", default=None,
                    help="write findings (notes, mismatches) here")
    args = ap.parse_args()
    dc = Doveconf(args.doveconf)
    notes = []

    # --- defaults ----------------------------------------------------------
    out, err = dc.run("", "-a")
    empty = parse_dump(out)
    heads = [l[2:] for l in out.splitlines() if l.startswith("# ")]
    version = re.sub(r":\s.*$", "", heads[0])
    if len(heads) > 1 and heads[1].startswith("Pigeonhole"):
        version += ", " + heads[1]
    global_defaults = dict(empty.settings)
    services = [b for b in empty.blocks if b.btype == "service"]
    others = [b for b in empty.blocks if b.btype != "service"]
    if others:
        raise SystemExit("unexpected blocks in an empty config: %r"
                         % [(b.btype, b.name) for b in others])
    out_d, _ = dc.run("", "-d")
    if parse_dump(out_d).settings != empty.settings:
        notes.append("doveconf -d and -a differ on an empty config")

    block_conf = ("service foo {\n unix_listener u {\n }\n"
                  " fifo_listener f {\n }\n inet_listener i {\n }\n}\n"
                  "namespace foo {\n mailbox m {\n }\n}\n"
                  "passdb {\n}\nuserdb {\n}\nmetric m {\n}\n"
                  "event_exporter e {\n}\n")
    out, _ = dc.run(block_conf, "-a")
    blocks = parse_dump(out)
    section_defaults = {}
    for sec in SECTIONS:
        node = blocks.find(WRAP[sec][1])
        if node is None:
            raise SystemExit("doveconf -a did not print the %s test block"
                             % sec)
        section_defaults[sec] = dict(node.settings)
    if section_defaults["FIFO_LISTENER"] != section_defaults["UNIX_LISTENER"]:
        notes.append("fifo_listener fields differ from unix_listener")
    else:
        del section_defaults["FIFO_LISTENER"]
    sections = [s for s in SECTIONS if s in section_defaults]

    # -n on empty blocks: the fields printed anyway are STR_VARS.
    always = {}
    for sec in sections:
        out, _ = dc.run(WRAP[sec][0].format(kv=""), "-n")
        node = parse_dump(out).find(WRAP[sec][1])
        always[sec] = set(node.settings) if node else set()

    # --- binary tables -------------------------------------------------------
    bins = ([args.doveconf] + sorted(glob.glob(args.libdir + "/*.so"))
            + sorted(glob.glob(args.libdir + "/modules/settings/*.so")))
    tables = elf_setting_defines(bins)
    elf_types = {}
    hidden, aliases = set(), []
    for t in tables:
        last = None
        for key, typ, hid in t:
            elf_types.setdefault(key, set()).add(typ)
            if hid:
                hidden.add(key)
            if typ == "ALIAS" and last:
                aliases.append((key, last))
            elif typ != "ALIAS":
                last = key

    # --- all settings to classify ---------------------------------------------
    defs = {"GLOBAL": dict(global_defaults)}
    for sec in sections:
        defs[sec] = dict(section_defaults[sec])

    # Accepted but not printed by `doveconf -a`: hidden settings and settings
    # whose default is NULL. Candidates come from the binary tables.
    extra = {"GLOBAL": {}}
    for sec in sections:
        extra[sec] = {}
    known_everywhere = set(global_defaults)
    for sec in sections:
        known_everywhere |= set(section_defaults[sec])
    probes = [(key, sec) for key, types in sorted(elf_types.items())
              if not types & {"ALIAS", "DEFLIST", "DEFLIST_UNIQUE", "STRLIST"}
              for sec in ["GLOBAL"] + sections
              if key not in defs[sec] and key != KEY_FIELD.get(sec)]
    with ThreadPoolExecutor(max_workers=8) as ex:
        errs = list(ex.map(lambda ks: dc.line_error(
            WRAP[ks[1]][0].format(kv="%s = x\n" % ks[0])), probes))
    for (key, sec), e in zip(probes, errs):
        if e is not None and e.startswith("Unknown setting"):
            continue
        # accepted (possibly with a value error): a real setting here
        default = HIDDEN_DEFAULTS.get(key, "") if key in hidden else ""
        extra[sec][key] = default

    for key in hidden:
        if key not in extra["GLOBAL"]:
            notes.append("hidden setting %s not accepted at top level" % key)
        elif key not in HIDDEN_DEFAULTS:
            notes.append("hidden setting %s: default unknown, using ''" % key)
        else:
            out, _ = dc.run("%s = %s\n" % (key, HIDDEN_DEFAULTS[key]))
            if key in parse_dump(out).settings:
                notes.append("hidden default of %s is not %r"
                             % (key, HIDDEN_DEFAULTS[key]))

    # aliases: verify and place them.
    alias_tables = {}
    for alias, target in aliases:
        for sec in ["GLOBAL"] + sections:
            if target not in defs[sec] and target not in extra[sec]:
                continue
            for probe in ("aliasprobe", "12345"):
                out, err = dc.run(WRAP[sec][0].format(
                    kv="%s = %s\n" % (alias, probe)), "-n")
                node = parse_dump(out).find(WRAP[sec][1])
                if node and node.settings.get(target) == probe:
                    alias_tables.setdefault(sec, set()).add((alias, target))
                    break

    # --- kinds -------------------------------------------------------------------
    work = []
    for sec in ["GLOBAL"] + sections:
        for key in list(defs[sec]) + list(extra[sec]):
            work.append((sec, key))
    with ThreadPoolExecutor(max_workers=8) as ex:
        results = list(ex.map(lambda sk: classify(dc, *sk), work))
    kinds = {}
    for (sec, key), (kind, note) in zip(work, results):
        kinds[(sec, key)] = kind
        if note:
            notes.append("%s %s: %s" % (sec, key, note))

    # Str -> StrVars
    for (sec, key), kind in list(kinds.items()):
        if kind != "Str":
            continue
        et = elf_types.get(key, set())
        if sec == "GLOBAL":
            if "STR_VARS" in et:
                kinds[(sec, key)] = "StrVars"
                if "STR" in et:
                    notes.append("%s: STR in one settings table, STR_VARS "
                                 "in another -> StrVars" % key)
        else:
            if key in always[sec]:
                kinds[(sec, key)] = "StrVars"
            elif "STR_VARS" in et and key in extra[sec]:
                # NULL default: -n can't show it; trust the binary table.
                kinds[(sec, key)] = "StrVars"
                notes.append("%s %s: StrVars from the binary table (NULL "
                             "default, not printed by -n)" % (sec, key))

    # cross-check with the binary tables
    for (sec, key), kind in sorted(kinds.items()):
        et = {ELF_KIND.get(t) for t in elf_types.get(key, set())}
        if not et:
            notes.append("%s %s: not found in binary tables" % (sec, key))
        elif kind not in et:
            notes.append("%s %s: empirical kind %s, binary tables say %s"
                         % (sec, key, kind, "/".join(sorted(x or "?" for x in et))))

    # enum values
    cands = colon_strings(bins + sorted(glob.glob(args.libdir + "/*"))
                          + sorted(glob.glob(args.libdir + "/modules/*.so")))
    enums = {}
    for (sec, key), kind in sorted(kinds.items()):
        if kind != "Enum":
            continue
        default = (defs[sec].get(key) if key in defs[sec]
                   else extra[sec].get(key))
        vals = enum_values(dc, sec, key, default, cands)
        if vals is None:
            raise SystemExit("no enum value list found for %s %s (default %r)"
                             % (sec, key, default))
        enums[(sec, key)] = vals

    # --- overrides ---------------------------------------------------------------
    for key, val in OVERRIDES.items():
        if key not in defs["GLOBAL"]:
            raise SystemExit("override for unknown setting " + key)
        defs["GLOBAL"][key] = val

    # --- default services -------------------------------------------------------
    gen_service = section_defaults["SERVICE"]
    gen_listener = {"unix_listener": section_defaults["UNIX_LISTENER"],
                    "fifo_listener": section_defaults.get(
                        "FIFO_LISTENER", section_defaults["UNIX_LISTENER"]),
                    "inet_listener": section_defaults["INET_LISTENER"]}
    lkind = {"unix_listener": "Unix", "fifo_listener": "Fifo",
             "inet_listener": "Inet"}
    svc_out = []
    for svc in services:
        for k in gen_service:
            if k not in svc.settings:
                raise SystemExit("service %s lacks %s" % (svc.name, k))
        values = [(k, v) for k, v in svc.settings.items()
                  if gen_service.get(k) != v]
        listeners = []
        for b in svc.blocks:
            gen = gen_listener[b.btype]
            lv = [(k, v) for k, v in b.settings.items() if gen.get(k) != v]
            listeners.append((lkind[b.btype], b.name, lv))
        svc_out.append((svc.name, values, listeners))

    # --- write --------------------------------------------------------------------
    o = []
    w = o.append
    w("//! Generated by config/tools/gen_catalog.py from Dovecot 2.3.19's "
      "doveconf; do not edit.\n")
    w("//!\n//! Source: doveconf %s.\n" % version)
    w("//! Defaults are `doveconf -a` values except these Debian paths, "
      "replaced by upstream/RHEL ones:\n")
    for k, v in OVERRIDES.items():
        w("//! `%s = %s`.\n" % (k, v))
    w("\nuse super::{DefaultListener, DefaultService, Kind::*, ListenerKind, "
      "SettingDef};\n")

    def table(name, doc, sec, items):
        w("\n/// %s\n" % doc)
        w("pub static %s: &[SettingDef] = &[\n" % name)
        for key in sorted(items):
            kind = kinds[(sec, key)]
            w("    SettingDef::new(%s, %s, %s),\n"
              % (rs(key), kind_rs(kind, enums.get((sec, key))),
                 rs(items[key])))
        w("];\n")

    def alias_table(name, doc, sec):
        w("\n/// %s\n" % doc)
        w("pub static %s: &[(&str, &str)] = &[\n" % name)
        for a, t in sorted(alias_tables.get(sec, ())):
            w("    (%s, %s),\n" % (rs(a), rs(t)))
        w("];\n")

    docs = {
        "GLOBAL": "Every top-level `key = value` setting `doveconf -a` prints.",
        "SERVICE": "Fields of a `service NAME { }` block (generic defaults).",
        "UNIX_LISTENER": "Fields of `unix_listener PATH { }` "
                         "(and `fifo_listener PATH { }`, same fields).",
        "FIFO_LISTENER": "Fields of `fifo_listener PATH { }`.",
        "INET_LISTENER": "Fields of `inet_listener NAME { }`.",
        "NAMESPACE": "Fields of `namespace NAME { }`.",
        "MAILBOX": "Fields of `mailbox NAME { }` inside a namespace.",
        "PASSDB": "Fields of `passdb [NAME] { }` (`passdb NAME {}` sets "
                  "`name`, which doveconf prints as a field).",
        "USERDB": "Fields of `userdb [NAME] { }` (`userdb NAME {}` sets "
                  "`name`, which doveconf prints as a field).",
        "METRIC": "Fields of `metric NAME { }` (stats).",
        "EVENT_EXPORTER": "Fields of `event_exporter NAME { }` (stats).",
    }
    table("GLOBAL", docs["GLOBAL"], "GLOBAL", defs["GLOBAL"])
    table("GLOBAL_HIDDEN",
          "Top-level settings doveconf accepts but `doveconf -a` does not "
          "print unless set\n/// (SET_FLAG_HIDDEN ones, and ones whose "
          "default is NULL: default shown as \"\").\n/// `doveconf -n` prints "
          "them whenever they are set and differ from the default\n/// (the "
          "NULL-default ones: whenever set, even to \"\").",
          "GLOBAL", extra["GLOBAL"])
    alias_table("GLOBAL_ALIASES",
                "Top-level alias names: (alias, setting). doveconf prints "
                "the setting's name.", "GLOBAL")
    for sec in sections:
        table(sec, docs[sec], sec, defs[sec])
        if extra[sec]:
            table(sec + "_HIDDEN",
                  "`%s` fields with a NULL default: accepted, not printed "
                  "by `doveconf -a`/`-n` unless set\n/// (printed whenever "
                  "set, even to \"\")." % sec.lower(), sec, extra[sec])
        if alias_tables.get(sec):
            alias_table(sec + "_ALIASES",
                        "`%s` alias names: (alias, field)." % sec.lower(),
                        sec)

    w("\n/// Services Dovecot defines without any configuration "
      "(`doveconf -d`), in printed order.\n")
    w("pub static DEFAULT_SERVICES: &[DefaultService] = &[\n")
    for name, values, listeners in svc_out:
        w("    DefaultService {\n        name: %s,\n" % rs(name))
        w("        values: &[%s],\n" % ", ".join(
            "(%s, %s)" % (rs(k), rs(v)) for k, v in values))
        if not listeners:
            w("        listeners: &[],\n")
        else:
            w("        listeners: &[\n")
            for kind, lname, lv in listeners:
                w("            DefaultListener { kind: ListenerKind::%s, "
                  "name: %s, values: &[%s] },\n"
                  % (kind, rs(lname), ", ".join(
                      "(%s, %s)" % (rs(k), rs(v)) for k, v in lv)))
            w("        ],\n")
        w("    },\n")
    w("];\n")

    with open(args.out, "w") as f:
        f.write("".join(o))

    shutil.rmtree(dc.tmp, ignore_errors=True)
    summary = ["%s: %d" % (s, len(defs[s])) for s in ["GLOBAL"] + sections]
    summary += ["%s hidden: %s" % (s, sorted(extra[s]))
                for s in ["GLOBAL"] + sections if extra[s]]
    summary += ["%s aliases: %s" % (s, sorted(a))
                for s, a in alias_tables.items()]
    summary.append("services: %d" % len(svc_out))
    summary.append("doveconf runs: %d" % dc.n)
    text = "\n".join(summary + ["notes:"] + ["  " + n for n in notes]) + "\n"
    if args.report:
        with open(args.report, "w") as f:
            f.write(text)
    sys.stderr.write(text)


if __name__ == "__main__":
    main()
