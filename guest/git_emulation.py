"""Answers the `git` commands of version and file finders (setuptools-scm, hatch-vcs,
versioneer, dunamai) from the repository mounted read-only at /src/.git, with dulwich.

The hook runner calls `answer` where a machine would start `git`. Each answer is what git
2.47 prints for the same repository, or a refusal: a command, option, pathspec or
repository feature this emulation does not implement exactly fails as git fails on a
feature it lacks (non-zero status, a message on stderr), and the host ends the build
(never a silently wrong version or file list). Standard library and dulwich only;
untrusted like the runner.
"""

import fnmatch
import os
import sys

GIT_VERSION = b"git version 2.47.0 (wasm-build emulation on dulwich)\n"
ZERO_ENV_OK = {"GIT_TERMINAL_PROMPT", "GIT_CONFIG_NOSYSTEM", "GIT_PAGER", "GIT_ASKPASS", "GIT_OPTIONAL_LOCKS", "GIT_FLUSH"}
HARMLESS_CONFIG = {"log.showsignature", "color.ui", "core.pager", "advice.detachedhead"}
MAX_CANDIDATES = 10


class Refused(Exception):
    """The emulation cannot answer exactly."""


class Failed(Exception):
    """What git itself answers with a failure."""

    def __init__(self, status, stderr=b"", stdout=b""):
        Exception.__init__(self, stderr)
        self.status, self.stderr, self.stdout = status, stderr, stdout


def fatal(message, status=128):
    return Failed(status, b"fatal: " + message.encode() + b"\n")


def answer(argv, cwd, repo_dir, lib, env, stdin=b""):
    """(status, stdout, stderr, refused-why or None) for `git` started with argv in cwd."""
    try:
        return 0, Git(repo_dir, lib, cwd, env).run(list(argv[1:]), stdin), b"", None
    except Failed as failure:
        return failure.status, failure.stdout, failure.stderr, None
    except Refused as why:
        return 129, b"", ("error: wasm-build's git emulation cannot answer this: %s\n" % why).encode(), str(why)
    except Exception as error:  # the emulation's own failure: never an answer
        why = "%s: %s" % (type(error).__name__, error)
        return 128, b"", ("fatal: wasm-build's git emulation failed: %s\n" % why).encode(), why


class Git:
    def __init__(self, repo_dir, lib, cwd, env):
        self.repo_dir = os.path.normpath(repo_dir)
        self.top = os.path.dirname(self.repo_dir)
        self.lib, self.cwd, self.env = lib, os.path.normpath(cwd or os.getcwd()), env
        self.git_dir_given = None
        self._repo = None

    # -- set-up ------------------------------------------------------------------------
    def run(self, args, stdin):
        for key in self.env or ():
            if key.startswith("GIT_") and key not in ZERO_ENV_OK:
                raise Refused("the environment variable %s" % key)
        while args and args[0].startswith("-"):
            option = args.pop(0)
            if option in ("--version", "-v"):
                return GIT_VERSION
            if option == "--git-dir" and args:
                self.git_dir_given = args.pop(0)
            elif option.startswith("--git-dir="):
                self.git_dir_given = option[len("--git-dir="):]
            elif option == "-C" and args:
                self.cwd = os.path.normpath(os.path.join(self.cwd, args.pop(0)))
            elif option == "-c" and args:
                key = args.pop(0).partition("=")[0].lower()
                if key not in HARMLESS_CONFIG:
                    raise Refused("the setting -c %s" % key)
            elif option in ("--no-pager", "--no-optional-locks"):
                pass
            else:
                raise Refused("the option %s" % option)
        if not args:
            raise Failed(1, b"usage: git [-v | --version] [-h | --help] <command> [<args>]\n")
        command, args = args[0], args[1:]
        if command == "version":
            return GIT_VERSION
        if command == "help" and not args:
            return b"usage: git [-v | --version] [-h | --help] <command> [<args>]\n"
        method = getattr(self, "cmd_" + command.replace("-", "_"), None)
        if method is None:
            raise Refused("the command git %s" % command)
        self.locate()
        return method(args, stdin)

    def locate(self):
        """The repository is the mounted one, found as git finds it, or none."""
        if self.git_dir_given is not None:
            given = os.path.normpath(os.path.join(self.cwd, self.git_dir_given))
            if given != self.repo_dir:
                raise fatal("not a git repository: '%s'" % self.git_dir_given)
            if self.cwd != self.top:
                # With --git-dir alone git takes the working directory as the top.
                raise Refused("--git-dir with a working directory other than the top")
            self.prefix = ""
            return
        if self.cwd == self.top:
            self.prefix = ""
        elif self.cwd.startswith(self.top.rstrip("/") + "/"):
            rest = self.cwd[len(self.top.rstrip("/")) + 1:]
            if rest == ".git" or rest.startswith(".git/"):
                raise Refused("a working directory inside .git")
            self.prefix = rest + "/"
        else:
            raise fatal("not a git repository (or any of the parent directories): .git")

    @property
    def repo(self):
        if self._repo is None:
            if self.lib not in sys.path:
                sys.path.append(self.lib)
            try:
                from dulwich.repo import Repo
            finally:
                if self.lib in sys.path:
                    sys.path.remove(self.lib)
            repo = Repo(self.top)
            config = repo.get_config()
            for section, key in ((b"core", b"worktree"), (b"core", b"bare"), (b"extensions", b"worktreeconfig")):
                try:
                    value = config.get(section, key)
                except KeyError:
                    continue
                if not (key == b"bare" and value.lower() in (b"false", b"no", b"0")):
                    raise Refused("the repository setting %s.%s" % (section.decode(), key.decode()))
            if os.path.exists(os.path.join(self.repo_dir, "commondir")):
                raise Refused("a repository that shares another's objects (commondir)")
            if os.path.exists(os.path.join(self.repo_dir, "objects/info/alternates")):
                raise Refused("a repository with alternates")
            self._repo = repo
        return self._repo

    # -- revisions ---------------------------------------------------------------------
    def head(self):
        try:
            return self.repo.refs[b"HEAD"]
        except KeyError:
            return None

    def resolve(self, name):
        """The commit id a revision names, or None."""
        if name in ("HEAD", "@"):
            return self.head()
        raw = name.encode()
        if len(name) == 40 and all(c in "0123456789abcdef" for c in name):
            return raw if raw in self.repo.object_store else None
        if any(c in name for c in "^~:@{}") or (len(name) >= 4 and all(c in "0123456789abcdef" for c in name)):
            raise Refused("the revision syntax %r" % name)
        for candidate in (raw, b"refs/" + raw, b"refs/tags/" + raw, b"refs/heads/" + raw,
                          b"refs/remotes/" + raw, b"refs/remotes/" + raw + b"/HEAD"):
            try:
                return self.peel(self.repo.refs[candidate])
            except KeyError:
                continue
        return None

    def peel(self, sha):
        from dulwich.objects import Tag

        obj = self.repo[sha]
        while isinstance(obj, Tag):
            obj = self.repo[obj.object[1]]
        return obj.id

    def commit_or_die(self, name, echo=False):
        """The commit `name` names, or git's failure (rev-parse also echoes the name)."""
        sha = self.resolve(name)
        if sha is None:
            raise Failed(128, ("fatal: ambiguous argument '%s': unknown revision or path not in the working "
                               "tree.\nUse '--' to separate paths from revisions, like this:\n"
                               "'git <command> [<revision>...] -- [<file>...]'\n" % name).encode(),
                         name.encode() + b"\n" if echo else b"")
        return sha

    def abbrev(self, sha, length=None):
        if length is not None and length >= 40:
            return sha.decode()
        if length is None:
            count = sum(len(pack.index) for pack in self.repo.object_store.packs)
            length = max(7, (count.bit_length() + 1) // 2) if count else 7
        length = max(length, 4)
        hexsha = sha.decode()
        same = [other.decode() for other in self.repo.object_store if other.decode().startswith(hexsha[:length])]
        while length < 40 and any(o != hexsha and o.startswith(hexsha[:length]) for o in same):
            length += 1
        return hexsha[:length]

    def date_walk(self, starts, flags_of=None):
        """Commits in the order git's date-ordered walk pops them (ties: first queued)."""
        queue, seen = [], set()
        for sha in starts:
            if sha not in seen:
                seen.add(sha)
                insert_by_date(queue, self.repo[sha])
        while queue:
            commit = queue.pop(0)
            yield commit
            for parent in commit.parents:
                if parent not in seen:
                    seen.add(parent)
                    insert_by_date(queue, self.repo[parent])

    def ancestors(self, sha):
        return {c.id for c in self.date_walk([sha])}

    # -- commands ----------------------------------------------------------------------
    def cmd_rev_parse(self, args, stdin):
        out, verify, quiet, abbrev_ref, short = [], False, False, False, None
        revs = []
        for arg in args:
            if arg == "--verify":
                verify = True
            elif arg in ("--quiet", "-q"):
                quiet = True
            elif arg == "--abbrev-ref":
                abbrev_ref = True
            elif arg == "--short":
                short, verify = -1, True  # --short implies --verify; the length git's
            elif arg.startswith("--short="):
                short, verify = int(arg[8:]), True
            elif arg == "--show-prefix":
                out.append(self.prefix)
            elif arg == "--show-toplevel":
                out.append(self.top)
            elif arg == "--show-cdup":
                out.append("../" * self.prefix.count("/"))
            elif arg in ("--git-dir", "--absolute-git-dir"):
                if arg == "--git-dir" and self.git_dir_given is not None:
                    out.append(self.git_dir_given)
                elif arg == "--git-dir" and not self.prefix:
                    out.append(".git")
                else:
                    out.append(self.repo_dir)
            elif arg == "--is-inside-work-tree":
                out.append("true")
            elif arg == "--is-inside-git-dir":
                out.append("false")
            elif arg == "--is-bare-repository":
                out.append("false")
            elif arg.startswith("-"):
                raise Refused("git rev-parse %s" % arg)
            else:
                revs.append(arg)
        if verify and len(revs) != 1:
            raise Failed(128, b"fatal: Needed a single revision\n")
        for rev in revs:
            sha = self.resolve(rev)
            if sha is None:
                if verify:
                    raise Failed(1) if quiet else Failed(128, b"fatal: Needed a single revision\n")
                self.commit_or_die(rev, echo=True)
            if abbrev_ref:
                if rev not in ("HEAD", "@"):
                    raise Refused("git rev-parse --abbrev-ref of a name other than HEAD")
                target = self.repo.refs.read_ref(b"HEAD")
                if target.startswith(b"ref: refs/heads/"):
                    out.append(target[len(b"ref: refs/heads/"):].decode())
                else:
                    out.append("HEAD")
            elif short is not None:
                out.append(self.abbrev(sha, None if short < 0 else max(short, 4)))
            else:
                out.append(sha.decode())
        return "".join(line + "\n" for line in out).encode()

    def cmd_symbolic_ref(self, args, stdin):
        short = "--short" in args
        quiet = "-q" in args or "--quiet" in args
        names = [a for a in args if not a.startswith("-")]
        if [a for a in args if a.startswith("-") and a not in ("--short", "-q", "--quiet")] or names != ["HEAD"]:
            raise Refused("git symbolic-ref %s" % " ".join(args))
        target = self.repo.refs.read_ref(b"HEAD")
        if not target.startswith(b"ref: "):
            if quiet:
                raise Failed(1)
            raise fatal("ref HEAD is not a symbolic ref")
        name = target[5:].strip()
        if short:
            for prefix in (b"refs/heads/", b"refs/tags/", b"refs/remotes/", b"refs/"):
                if name.startswith(prefix):
                    name = name[len(prefix):]
                    break
        return name + b"\n"

    def tag_names(self, patterns, excludes):
        """{commit: (priority, tagger time, name)} as git describe's get_name keeps them."""
        from dulwich.objects import Commit, Tag

        names = {}
        for ref in sorted(self.repo.refs.keys(base=b"refs/tags/")):
            name = ref.decode()
            if patterns and not any(wildmatch(p, name) for p in patterns):
                continue
            if any(wildmatch(p, name) for p in excludes):
                continue
            sha = self.repo.refs[b"refs/tags/" + ref]
            obj = self.repo[sha]
            annotated = isinstance(obj, Tag)
            tagger_time = obj.tag_time if annotated else 0
            while isinstance(obj, Tag):
                obj = self.repo[obj.object[1]]
            if not isinstance(obj, Commit):
                continue
            prio = 2 if annotated else 1
            known = names.get(obj.id)
            if known is None or known[0] < prio or (prio == 2 and known[0] == 2 and known[1] < tagger_time):
                names[obj.id] = (prio, tagger_time, name)
        return names

    def cmd_describe(self, args, stdin):
        tags = long_format = always = exact = False
        dirty_mark, abbrev, patterns, excludes, revs = None, None, [], [], []
        args = list(args)
        while args:
            arg = args.pop(0)
            if arg == "--tags":
                tags = True
            elif arg == "--long":
                long_format = True
            elif arg == "--always":
                always = True
            elif arg == "--exact-match":
                exact = True
            elif arg == "--dirty":
                dirty_mark = "-dirty"
            elif arg.startswith("--dirty="):
                dirty_mark = arg[len("--dirty="):]
            elif arg.startswith("--abbrev="):
                abbrev = int(arg[len("--abbrev="):])
            elif arg == "--match" and args:
                patterns.append(args.pop(0))
            elif arg.startswith("--match="):
                patterns.append(arg[len("--match="):])
            elif arg == "--exclude" and args:
                excludes.append(args.pop(0))
            elif arg.startswith("--exclude="):
                excludes.append(arg[len("--exclude="):])
            elif arg.startswith("-"):
                raise Refused("git describe %s" % arg)
            else:
                revs.append(arg)
        for pattern in patterns + excludes:
            check_pattern(pattern)
        if dirty_mark is not None and revs:
            raise fatal("option '--dirty' and commit-ishes cannot be used together")
        if len(revs) > 1:
            raise Refused("git describe of several commits")
        name = revs[0] if revs else "HEAD"
        sha = self.resolve(name)
        if sha is None:
            if not revs:
                raise fatal("No names found, cannot describe anything.")
            raise fatal("Not a valid object name %s" % name)
        if abbrev == 0 and long_format:
            raise fatal("options '--long' and '--abbrev=0' cannot be used together")
        suffix = dirty_mark if dirty_mark is not None and self.dirty() else ""
        names = self.tag_names(patterns, excludes)
        found = names.get(sha)
        if found and (tags or found[0] == 2):
            text = found[2]
            if long_format:
                text += "-0-g" + self.abbrev(sha, abbrev)
            return (text + suffix + "\n").encode()
        if exact:
            raise fatal("no tag exactly matches '%s'" % sha.decode())
        best = self.describe_walk(sha, names, tags)
        if best is None:
            if always:
                return (self.abbrev(sha, abbrev) + suffix + "\n").encode()
            if any(n[0] == 1 for n in names.values()) and not tags:
                raise fatal("No annotated tags can describe '%s'.\nHowever, there were unannotated tags: try --tags." % sha.decode())
            raise fatal("No tags can describe '%s'.\nTry --always, or create some tags." % sha.decode())
        tag_name, depth = best
        if abbrev == 0:
            return (tag_name + suffix + "\n").encode()
        return ("%s-%d-g%s%s\n" % (tag_name, depth, self.abbrev(sha, abbrev), suffix)).encode()

    def describe_walk(self, sha, names, tags):
        """git describe's walk (builtin/describe.c): the best candidate and its depth."""
        flags = {sha: 0}
        queue = [self.repo[sha]]
        seen = {sha}
        candidates = []  # [name, depth, bit, found_order]
        annotated = 0
        seen_commits = 0
        gave_up = None
        while queue:
            commit = queue.pop(0)
            seen_commits += 1
            found = names.get(commit.id)
            if found and (tags or found[0] == 2):
                if len(candidates) < MAX_CANDIDATES:
                    bit = 1 << (len(candidates) + 1)
                    candidates.append([found[2], seen_commits - 1, bit, len(candidates) + 1])
                    flags[commit.id] |= bit
                    if found[0] == 2:
                        annotated += 1
                else:
                    gave_up = commit
                    break
            for candidate in candidates:
                if not flags[commit.id] & candidate[2]:
                    candidate[1] += 1
            if annotated and not queue:
                break
            for parent in commit.parents:
                if parent not in seen:
                    seen.add(parent)
                    flags.setdefault(parent, 0)
                    insert_by_date(queue, self.repo[parent])
                flags[parent] = flags.get(parent, 0) | flags[commit.id]
        if not candidates:
            return None
        candidates.sort(key=lambda c: (c[1], c[3]))
        best = candidates[0]
        if gave_up is not None:
            insert_by_date(queue, gave_up)
        # finish_depth_computation
        while queue:
            commit = queue.pop(0)
            if flags[commit.id] & best[2]:
                if all(flags[c.id] & best[2] for c in queue):
                    break
            else:
                best[1] += 1
            for parent in commit.parents:
                if parent not in seen:
                    seen.add(parent)
                    flags.setdefault(parent, 0)
                    insert_by_date(queue, self.repo[parent])
                flags[parent] = flags.get(parent, 0) | flags[commit.id]
        return best[0], best[1]

    def changes(self):
        """(staged {path: X}, unstaged {path: Y}) of tracked files, as git status sees them."""
        from dulwich import porcelain

        status = porcelain.status(self.repo, untracked_files="no")
        staged = {}
        for kind, code in (("add", "A"), ("delete", "D"), ("modify", "M")):
            for path in status.staged.get(kind, []):
                staged[os.fsdecode(path)] = code
        if "A" in staged.values() and "D" in staged.values():
            raise Refused("staged additions and deletions (git would look for renames)")
        unstaged = {}
        for path in status.unstaged:
            path = os.fsdecode(path)
            unstaged[path] = "M" if os.path.lexists(os.path.join(self.top, path)) else "D"
        return staged, unstaged

    def dirty(self):
        staged, unstaged = self.changes()
        return bool(staged or unstaged)

    def cmd_status(self, args, stdin):
        zero, untracked_no, paths = False, False, None
        args = list(args)
        while args:
            arg = args.pop(0)
            if arg in ("--porcelain", "--porcelain=v1"):
                pass
            elif arg in ("--untracked-files=no", "-uno"):
                untracked_no = True
            elif arg == "-z":
                zero = True
            elif arg == "--":
                paths = args
                break
            else:
                raise Refused("git status %s" % arg)
        if not untracked_no:
            raise Refused("git status listing untracked files (only --untracked-files=no is emulated)")
        if paths:
            raise Refused("git status with paths")
        if self.prefix:
            raise Refused("git status below the top of the work tree")
        staged, unstaged = self.changes()
        lines = []
        for path in sorted(set(staged) | set(unstaged), key=lambda p: p.encode()):
            if not zero and needs_quoting(path):
                raise Refused("a path git would quote")
            lines.append("%s%s %s" % (staged.get(path, " "), unstaged.get(path, " "), path))
        end = "\0" if zero else "\n"
        return "".join(line + end for line in lines).encode()

    def cmd_log(self, args, stdin):
        return self.one_commit(args, "log")

    def cmd_show(self, args, stdin):
        if "-s" not in args and "--no-patch" not in args:
            raise Refused("git show with a patch")
        return self.one_commit([a for a in args if a not in ("-s", "--no-patch")] + ["-n", "1"], "show")

    def one_commit(self, args, command):
        count, fmt, revs = None, None, []
        args = list(args)
        while args:
            arg = args.pop(0)
            if arg in ("-n", "--max-count") and args:
                count = int(args.pop(0))
            elif arg.startswith("--max-count="):
                count = int(arg.split("=", 1)[1])
            elif arg.startswith("-n") and arg[2:].isdigit():
                count = int(arg[2:])
            elif arg[:1] == "-" and arg[1:].isdigit():
                count = int(arg[1:])
            elif arg.startswith("--format=") or arg.startswith("--pretty=tformat:"):
                fmt = arg.split("=", 1)[1].split("tformat:", 1)[-1] if arg.startswith("--pretty") else arg.split("=", 1)[1]
            elif arg == "--":
                if args:
                    raise Refused("git %s with paths" % command)
            elif arg.startswith("-"):
                raise Refused("git %s %s" % (command, arg))
            else:
                revs.append(arg)
        if count != 1 or fmt is None or len(revs) > 1:
            raise Refused("git %s other than one commit in a --format" % command)
        name = revs[0] if revs else "HEAD"
        if not revs and self.resolve("HEAD") is None:
            target = self.repo.refs.read_ref(b"HEAD") or b""
            branch = target[len(b"ref: refs/heads/"):].decode() if target.startswith(b"ref: refs/heads/") else "HEAD"
            raise fatal("your current branch '%s' does not have any commits yet" % branch)
        sha = self.commit_or_die(name)
        return (self.format(self.repo[sha], fmt) + "\n").encode()

    def format(self, commit, fmt):
        out, i = [], 0
        while i < len(fmt):
            c = fmt[i]
            if c != "%":
                out.append(c)
                i += 1
                continue
            for key in sorted(FORMATS, key=len, reverse=True):
                if fmt.startswith(key, i + 1):
                    out.append(FORMATS[key](self, commit))
                    i += 1 + len(key)
                    break
            else:
                raise Refused("the format placeholder %s" % fmt[i:i + 3])
        return "".join(out)

    def cmd_rev_list(self, args, stdin):
        count, revs = False, []
        for arg in args:
            if arg == "--count":
                count = True
            elif arg.startswith("-"):
                raise Refused("git rev-list %s" % arg)
            else:
                revs.append(arg)
        if len(revs) != 1:
            raise Refused("git rev-list of other than one revision or range")
        if ".." in revs[0]:
            if "..." in revs[0]:
                raise Refused("a symmetric difference")
            left, right = revs[0].split("..", 1)
            excluded = self.ancestors(self.commit_or_die(left or "HEAD"))
            start = self.commit_or_die(right or "HEAD")
        else:
            excluded, start = set(), self.commit_or_die(revs[0])
        if excluded:
            commits = [c.id for c in self.date_walk([start]) if c.id not in excluded]
            if not count:
                raise Refused("git rev-list of a range without --count")
        else:
            commits = [c.id for c in self.date_walk([start])]
        if count:
            return b"%d\n" % len(commits)
        return b"".join(sha + b"\n" for sha in commits)

    def export_attributes(self):
        """Whether any attributes file could set export-ignore (then the emulation, which
        does not evaluate attributes, refuses): .git/info/attributes, every .gitattributes
        of the work tree, and those of the index missing from it."""
        texts = []
        info = os.path.join(self.repo_dir, "info", "attributes")
        if os.path.exists(info):
            with open(info, "rb") as f:
                texts.append(f.read())
        for folder, folders, files in os.walk(self.top):
            if folder == self.top and ".git" in folders:
                folders.remove(".git")
            if ".gitattributes" in files:
                with open(os.path.join(folder, ".gitattributes"), "rb") as f:
                    texts.append(f.read())
        index = self.repo.open_index()
        for path in index.paths():
            if path == b".gitattributes" or path.endswith(b"/.gitattributes"):
                if not os.path.lexists(os.path.join(self.top, os.fsdecode(path))):
                    texts.append(self.repo[index[path].sha].data)
        return any(b"export-ignore" in text or b"[attr]" in text for text in texts)

    def cmd_ls_files(self, args, stdin):
        zero = stage = error_unmatch = False
        specs = []
        args = list(args)
        while args:
            arg = args.pop(0)
            if arg == "-z":
                zero = True
            elif arg in ("-s", "--stage"):
                stage = True
            elif arg in ("--cached", "-c"):
                pass
            elif arg == "--error-unmatch":
                error_unmatch = True
            elif arg == "--":
                specs.extend(args)
                break
            elif arg.startswith("-"):
                raise Refused("git ls-files %s" % arg)
            else:
                specs.append(arg)
        includes = []
        for spec in specs:
            if spec == ":(exclude,attr:export-ignore)":
                if self.export_attributes():
                    raise Refused("export-ignore attributes")
                continue
            if spec.startswith(":") or any(ch in spec for ch in "*?[\\"):
                raise Refused("the pathspec %s" % spec)
            includes.append(os.path.normpath(os.path.join(self.prefix, spec)).replace(os.sep, "/"))
        index = self.repo.open_index()
        lines, matched = [], set()
        for path in sorted(index.paths()):
            name = os.fsdecode(path)
            if self.prefix and not name.startswith(self.prefix):
                continue
            if includes:
                hit = [i for i in includes if i == "." or name == i or name.startswith(i + "/")]
                if not hit:
                    continue
                matched.update(hit)
            entry = index[path]
            if not hasattr(entry, "sha") or entry.stage().value != 0:
                raise Refused("an index with conflicts")
            if entry.skip_worktree or entry.is_sparse_dir(path):
                raise Refused("a sparse checkout")
            shown = name[len(self.prefix):]
            if not zero and needs_quoting(shown):
                raise Refused("a path git would quote")
            if stage:
                lines.append("%06o %s 0\t%s" % (entry.mode, entry.sha.decode(), shown))
            else:
                lines.append(shown)
        if error_unmatch:
            for spec, full in zip([s for s in specs if not s.startswith(":")], includes):
                if full not in matched:
                    raise Failed(1, ("error: pathspec '%s' did not match any file(s) known to git\n"
                                     "Did you forget to 'git add'?\n" % spec).encode())
        end = "\0" if zero else "\n"
        return "".join(line + end for line in lines).encode()

    def cmd_check_attr(self, args, stdin):
        zero = read_stdin = False
        attributes, paths = [], []
        args = list(args)
        while args:
            arg = args.pop(0)
            if arg == "-z":
                zero = True
            elif arg == "--stdin":
                read_stdin = True
            elif arg == "--":
                paths.extend(args)
                break
            elif arg.startswith("-"):
                raise Refused("git check-attr %s" % arg)
            else:
                attributes.append(arg)
        if attributes != ["export-ignore"]:
            raise Refused("git check-attr of attributes other than export-ignore")
        if self.export_attributes():
            raise Refused("export-ignore attributes")
        if read_stdin:
            data = stdin.decode() if isinstance(stdin, bytes) else (stdin or "")
            paths.extend(p for p in data.split("\0" if zero else "\n") if p)
        if zero:
            return "".join("%s\0export-ignore\0unspecified\0" % p for p in paths).encode()
        return "".join("%s: export-ignore: unspecified\n" % p for p in paths).encode()


def insert_by_date(queue, commit):
    """commit_list_insert_by_date: before the first commit strictly older."""
    for i, other in enumerate(queue):
        if other.commit_time < commit.commit_time:
            queue.insert(i, commit)
            return
    queue.append(commit)


POSIX_CLASSES = {"[:digit:]": "0-9", "[:alpha:]": "a-zA-Z", "[:alnum:]": "a-zA-Z0-9",
                 "[:upper:]": "A-Z", "[:lower:]": "a-z", "[:xdigit:]": "0-9a-fA-F"}


def translate(pattern):
    """A --match pattern as fnmatch reads it the way git's wildmatch does (flags 0: `*`
    matches `/` too), or Refused where they could differ."""
    for name, chars in POSIX_CLASSES.items():
        pattern = pattern.replace(name, chars)
    if "[:" in pattern or "[^" in pattern or "[!" in pattern or "**" in pattern or "\\" in pattern:
        raise Refused("the pattern %s" % pattern)
    return pattern


def check_pattern(pattern):
    translate(pattern)


def wildmatch(pattern, name):
    return fnmatch.fnmatchcase(name, translate(pattern))


def needs_quoting(path):
    return any(ord(c) < 0x20 or ord(c) >= 0x7F or c in '"\\' for c in path)


def iso_strict(seconds, offset):
    import datetime

    zone = datetime.timezone(datetime.timedelta(seconds=offset))
    text = datetime.datetime.fromtimestamp(seconds, zone).isoformat()
    return text[:-6] + "Z" if offset == 0 else text


def iso_like(seconds, offset):
    import datetime

    zone = datetime.timezone(datetime.timedelta(seconds=offset))
    moment = datetime.datetime.fromtimestamp(seconds, zone)
    sign = "-" if offset < 0 else "+"
    minutes = abs(offset) // 60
    return moment.strftime("%Y-%m-%d %H:%M:%S ") + "%s%02d%02d" % (sign, minutes // 60, minutes % 60)


def short_date(seconds, offset):
    return iso_like(seconds, offset)[:10]


def no_negative_utc(commit, which):
    if getattr(commit, "_%s_timezone_neg_utc" % which, False):
        raise Refused("a -0000 time zone")


def _time(which, render):
    def placeholder(git, commit):
        no_negative_utc(commit, which)
        return render(getattr(commit, which + "_time"), getattr(commit, which + "_timezone"))

    return placeholder


def _person(which, part):
    def placeholder(git, commit):
        raw = getattr(commit, which).decode("utf-8", "replace")
        name, _, email = raw.partition(" <")
        return name if part == "name" else email.rstrip(">")

    return placeholder


FORMATS = {
    "H": lambda git, c: c.id.decode(),
    "h": lambda git, c: git.abbrev(c.id),
    "T": lambda git, c: c.tree.decode(),
    "P": lambda git, c: " ".join(p.decode() for p in c.parents),
    "cI": _time("commit", iso_strict),
    "ci": _time("commit", iso_like),
    "ct": _time("commit", lambda s, o: str(s)),
    "cs": _time("commit", short_date),
    "aI": _time("author", iso_strict),
    "ai": _time("author", iso_like),
    "at": _time("author", lambda s, o: str(s)),
    "as": _time("author", short_date),
    "an": _person("author", "name"),
    "ae": _person("author", "email"),
    "cn": _person("committer", "name"),
    "ce": _person("committer", "email"),
    "s": lambda git, c: c.message.decode("utf-8", "replace").split("\n\n", 1)[0].replace("\n", " ").strip(),
    "n": lambda git, c: "\n",
    "%": lambda git, c: "%",
    "x00": lambda git, c: "\0",
}
