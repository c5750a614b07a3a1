"""Which model factories a session may import: the zoo's, and the ones this user vouched for.

A session folder is data: it may have been copied from someone else. A model
spec ``package.module:factory`` in its config.json is imported only when this
user gave it on this machine (``nebtui explore --model``; a data factory ``--data`` and a
loss function ``--loss package.module:function`` alike) or vouched for it
later (``nebtui sessions trust``). Either writes a tag into the config: an
HMAC-SHA256 of the session id, the spec, its arguments and the folder it is
imported from under a secret key of this user, kept in the data home (``.key``,
mode 0600), never in a session folder. A copied folder's tags were made with
another key, so they do not verify here; zoo names need no tag, and nor do
torchvision's models (``torchvision:NAME``): the name is looked up in torchvision's
own model registry, never imported, so it can only call one of torchvision's builders.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sessions.errors import SessionError

if TYPE_CHECKING:
    from sessions.disk.config import SessionConfig

KEY_FILE = ".key"
KEY_BYTES = 32
# engine.networks.models.ZOO's names, without importing torch (the CLI never does)
ZOO_NAMES = ("mlp", "small_cnn", "resnet20", "resnet32", "resnet44", "resnet56", "densenet40_12", "densenet100_12_bc")
TORCHVISION_PREFIX = "torchvision:"  # engine.networks.torchvision_zoo.PREFIX


def is_zoo(spec: Any) -> bool:
    """A model name of nebtui's own zoo, or of torchvision's registry: never a user's code."""
    return isinstance(spec, str) and (spec in ZOO_NAMES or spec.startswith(TORCHVISION_PREFIX))


def is_data_factory(spec: Any) -> bool:
    """A data spec ``package.module:factory``: the user's code, to be vouched for as a model
    factory is (nebtui's own kinds, ``mnist:/path`` and the like, name a folder after the colon)."""
    from sessions.problem.build import EMBEDDED, FOLDERS

    if not isinstance(spec, str):
        return False
    module, colon, name = spec.partition(":")
    return (bool(colon) and module.partition("@")[0] not in FOLDERS + EMBEDDED and name.isidentifier()
            and all(part.isidentifier() for part in module.split(".")))


def is_loss_function(spec: Any) -> bool:
    """A loss spec ``package.module:function``: the user's code, vouched for as a factory is
    (nebtui's own losses are names without a colon)."""
    if not isinstance(spec, str):
        return False
    module, colon, name = spec.partition(":")
    return bool(colon) and name.isidentifier() and all(part.isidentifier() for part in module.split("."))


def _key_path(home: Path) -> Path:
    return Path(home) / KEY_FILE


def _read_key(path: Path) -> bytes | None:
    """The key, or None when there is none yet; a damaged key file is an error."""
    try:
        key = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as error:
        raise SessionError(f"cannot read nebtui's key {path} ({error.strerror}): make it readable by you") from None
    if len(key) != KEY_BYTES:
        raise SessionError(f"nebtui's key {path} is damaged: remove it (the factories you vouched for will need "
                           "nebtui sessions trust again)")
    return key


def user_key(home: Path) -> bytes:
    """This user's secret key, created on first use (mode 0600, written whole: a
    second process that races the first reads the same key)."""
    path = _key_path(home)
    key = _read_key(path)
    if key is not None:
        return key
    fd, tmp = tempfile.mkstemp(prefix=".key-", dir=path.parent)  # mode 0600
    try:
        os.write(fd, secrets.token_bytes(KEY_BYTES))
        os.fsync(fd)
        os.close(fd)
        try:
            os.link(tmp, path)  # never replaces a key another process made first
        except FileExistsError:
            pass
    except OSError as error:
        raise SessionError(f"cannot write nebtui's key {path} ({error.strerror}): check the data home") from None
    finally:
        Path(tmp).unlink(missing_ok=True)
    return _read_key(path) or b""


def _message(session_id: str, spec: str, arguments: Any, import_dir: Any, data: Any = None,
             loss: Any = None) -> bytes:
    message = {"session": session_id, "model": spec, "model_args": arguments}
    if import_dir is not None:  # the folder the code comes from is vouched for with it
        message["import_dir"] = import_dir
    if is_data_factory(data):  # a data factory is the user's code too
        message["data"] = data
    if is_loss_function(loss):  # so is a loss function
        message["loss"] = loss
    return json.dumps(message, sort_keys=True).encode()


def tag(home: Path, session_id: str, spec: str, arguments: Any, *, import_dir: str | None = None,
        data: Any = None, loss: Any = None) -> str:
    """The vouch for ``spec`` with ``arguments`` (and the data factory ``data`` and the loss
    function ``loss``, if they are ones), imported from ``import_dir`` first, in session ``session_id``."""
    message = _message(session_id, spec, arguments, import_dir, data, loss)
    return hmac.new(user_key(home), message, hashlib.sha256).hexdigest()


def vouched(home: Path, session_id: str, spec: str, arguments: Any, given: Any, *, import_dir: Any = None,
            data: Any = None, loss: Any = None) -> bool:
    """Whether ``given`` is this user's vouch for ``spec`` (and the data factory ``data``, if it
    is one); reads the key, never creates it."""
    key = _read_key(_key_path(home))
    if key is None or not isinstance(given, str):
        return False
    wanted = hmac.new(key, _message(session_id, spec, arguments, import_dir, data, loss), hashlib.sha256).hexdigest()
    return hmac.compare_digest(wanted, given)


def runs_user_code(model: Any, data: Any, loss: Any = None) -> bool:
    """Whether a network session with this model, data and loss imports code of the user's."""
    return not is_zoo(model) or is_data_factory(data) or is_loss_function(loss)


def refusal(session_id: str, spec: str, what: str = "model") -> str:
    """The one line that says a session's factory was not given here, and how to vouch for it."""
    noun = "loss function" if what == "loss" else f"{what} factory"
    return (f"session {session_id} names the {noun} {spec}, which was not given on this machine, and "
            f"nebtui runs no code named in a file: if you trust {spec}, vouch for it with "
            f"nebtui sessions trust {session_id} {spec}")


def vouch_for(folder: Any, spec: str) -> None:
    """Record this user's vouch for the factory ``spec`` that session ``folder`` names
    (``nebtui sessions trust``): its config.json gets the tag, rewritten whole."""
    from sessions.disk.atomic import write_atomic
    from sessions.disk.config import read_config

    config = read_config(folder)
    model, data, loss = config.problem.model, config.problem.data, config.problem.loss
    if config.problem.kind != "network" or not runs_user_code(model, data, loss):
        raise SessionError(f"session {folder.id} runs no code of yours ({model or config.problem.surface} is "
                           "nebtui's own): it needs no vouch")
    factories = {f"the model factory {model}": model} if not is_zoo(model) else {}
    factories.update({f"the data factory {data}": data} if is_data_factory(data) else {})
    factories.update({f"the loss function {loss}": loss} if is_loss_function(loss) else {})
    if spec not in factories.values():
        raise SessionError(f"session {folder.id} names {' and '.join(factories)}, not {spec}: type the factory it "
                           f"names to vouch for it")
    raw = folder.config_json()  # rewritten as it is, with the tag: what an older nebtui wrote stays
    raw["vouch"] = tag(folder.path.parent, folder.id, model, config.problem.model_args,  # type: ignore[arg-type]
                       import_dir=config.problem.import_dir, data=data, loss=loss)
    write_atomic(folder.config_path, (json.dumps(raw, indent=2, sort_keys=True) + "\n").encode())


def runnable_config(folder: Any) -> SessionConfig:
    """A session's config to run or report: read_config, and its model factory, unless a zoo
    name, vouched for by this user (sessions.problem.trust); else the one line that says how to vouch."""
    from sessions.disk.config import read_config

    config = read_config(folder)
    model, data, loss = config.problem.model, config.problem.data, config.problem.loss
    if config.problem.kind == "network" and runs_user_code(model, data, loss):
        home = folder.path.parent
        if not vouched(home, folder.id, model, config.problem.model_args, config.vouch,
                       import_dir=config.problem.import_dir, data=data, loss=loss):
            if not is_zoo(model):
                raise SessionError(refusal(folder.id, model))
            if is_data_factory(data):
                raise SessionError(refusal(folder.id, data, "data"))
            raise SessionError(refusal(folder.id, loss, "loss"))
    return config
