"""``aigc recommend ...``: ingest a catalogue and events, train, recommend, explain, evaluate.

Each command parses its options, calls :class:`~.service.RecommenderService` and prints.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from aigc_apps.cli.context import settings_from
from aigc_apps.console import (
    DbOpt,
    JsonOpt,
    LoraAlphaOpt,
    LoraDropoutOpt,
    LoraROpt,
    console,
    print_json,
)
from aigc_apps.errors import AigcError

# The service imports its models (numpy, scikit-learn, faiss, torch) only where it uses them,
# so that `aigc ... --help`, `ingest` and `status` start at once.
if TYPE_CHECKING:
    from .recommender import Recommendation, RecommenderConfig
    from .service import RecommenderService

app = typer.Typer(
    help="Personalised recommendations from item texts and user behaviour: collaborative "
    "(EASE + sequence) and text-interest models combined by a learned ranker; cold start for "
    "new items and new users.",
    no_args_is_help=True,
)

EncoderOpt = Annotated[
    str | None,
    typer.Option(
        help="Content encoder: alias, folder, 'hashing' (no model) or 'none' "
        "(default: AIGC_ENCODER, minilm-l6 when unset)."
    ),
]
InterestOpt = Annotated[
    bool, typer.Option("--interest-model/--no-interest-model", help="Tune the text interest model.")
]
PairsOpt = Annotated[int, typer.Option(min=1, help="Training pairs for the interest model.")]
LoraOpt = Annotated[
    bool | None,
    typer.Option(
        "--interest-lora/--interest-full",
        help="Tune the interest encoder through LoRA adapters or all its weights (default: "
        "the library's InterestConfig, chosen on validation; LoRA when --lora-* is given).",
        show_default=False,
    ),
]
KOpt = Annotated[int, typer.Option("-k", "--k", min=1, max=500, help="How many items.")]


def _service(db: str | None) -> RecommenderService:
    from .service import RecommenderService

    return RecommenderService(db, settings=settings_from())


def _config(
    encoder: str | None,
    interest: bool,
    pairs: int,
    lora: bool | None,
    lora_r: int | None,
    lora_alpha: int | None,
    lora_dropout: float | None,
) -> RecommenderConfig:
    """The options as a config; an unset ``--encoder`` is the workspace's default encoder."""
    from .interest import InterestConfig
    from .recommender import RecommenderConfig

    knobs: dict[str, Any] = {
        "lora_r": lora_r,
        "lora_alpha": lora_alpha,
        "lora_dropout": lora_dropout,
    }
    shaped = any(value is not None for value in knobs.values())
    if lora is None:  # the library's default, so that the CLI trains what the SDK trains
        lora = shaped or InterestConfig().lora
    if not (interest and lora) and shaped:
        raise AigcError(
            "--lora-r, --lora-alpha and --lora-dropout shape the LoRA interest model; "
            "they do not go with --interest-full or --no-interest-model"
        )
    default_encoder = settings_from().default_encoder
    chosen: dict[str, Any] = {
        "interest": InterestConfig(base=default_encoder, max_pairs=pairs, lora=lora, **knobs)
        if interest else None,
        "encoder": default_encoder,
    }
    if encoder is not None:
        chosen["encoder"] = None if encoder.lower() == "none" else encoder
    return RecommenderConfig(**chosen)


@app.command()
def ingest(
    items: Annotated[Path | None, typer.Option(help="Catalogue file (CSV/TSV/JSONL/JSON).")] = None,
    events: Annotated[
        Path | None, typer.Option(help="Event log file (CSV/TSV/JSONL/JSON).")
    ] = None,
    id_col: Annotated[str, typer.Option(help="Items: id column.")] = "id",
    title_col: Annotated[str, typer.Option(help="Items: title column.")] = "title",
    description_col: Annotated[
        str, typer.Option(help="Items: description column.")
    ] = "description",
    tags_col: Annotated[
        str, typer.Option(help="Items: tags/genres column ('|', ',' or ';').")
    ] = "tags",
    user_col: Annotated[str, typer.Option(help="Events: user column.")] = "user",
    item_col: Annotated[str, typer.Option(help="Events: item id column.")] = "item",
    type_col: Annotated[
        str, typer.Option(help="Events: type column (view, purchase...).")
    ] = "type",
    weight_col: Annotated[str, typer.Option(help="Events: optional weight column.")] = "weight",
    rating_col: Annotated[str, typer.Option(help="Events: optional rating column.")] = "rating",
    time_col: Annotated[
        str, typer.Option(help="Events: timestamp column (epoch seconds or ISO 8601).")
    ] = "timestamp",
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Upsert items and add events; duplicates are not stored twice, bad rows are reported."""
    from .ingest import EventColumns, ItemColumns

    with _service(db) as service:
        report = service.ingest(
            items,
            events,
            item_columns=ItemColumns(id_col, title_col, description_col, tags_col),
            event_columns=EventColumns(
                user_col, item_col, type_col, weight_col, rating_col, time_col
            ),
        )
    if json_output:
        print_json(report.to_dict())
        return
    console.print(report.summary())
    for line in report.skipped[:20]:
        console.print(f"  skipped {line}")
    if len(report.skipped) > 20:
        console.print(f"  ... and {len(report.skipped) - 20} more")


@app.command()
def train(
    encoder: EncoderOpt = None,
    interest_model: InterestOpt = True,
    interest_pairs: PairsOpt = 3000,
    interest_lora: LoraOpt = None,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Fit every model on the store's items and events, register the model and make it active."""
    config = _config(
        encoder, interest_model, interest_pairs, interest_lora, lora_r, lora_alpha, lora_dropout
    )
    with _service(db) as service, console.status("Training the recommender...", spinner="dots"):
        report = service.train(config).report
    if json_output:
        print_json(report)
        return
    console.print(
        f"Trained {report['name']} on {report['items']} items, {report['users']} users, "
        f"{report['events']} events in {report['train_seconds']} s "
        f"(ranker: {report['ranker']}, {report['ranker_rows']} rows); it is the active model now"
    )
    console.print(f"Saved to {report['path']}")
    cache = report["cache"]
    console.print(f"Cached the lists of {cache['users']} users in {cache['seconds']} s")


def _print_list(items: list[Recommendation], explain: bool) -> None:
    table = Table(show_header=True, header_style="bold")
    for col in ("#", "item", "title", "score"):
        table.add_column(col)
    if explain:
        table.add_column("why")
    for n, rec in enumerate(items, start=1):
        row = [str(n), rec.item_id, rec.title, f"{rec.score:.4f}"]
        if explain:
            row.append("; ".join(rec.reasons))
        table.add_row(*row)
    console.print(table)


@app.command("for-user")
def for_user(
    user: Annotated[str, typer.Argument(help="User id as in the event log (new users allowed).")],
    k: KOpt = 10,
    exclude_seen: Annotated[
        bool,
        typer.Option("--exclude-seen/--include-seen", help="Leave out items the user already has."),
    ] = True,
    explain: Annotated[bool, typer.Option("--explain", help="Say why each item is there.")] = False,
    interest: Annotated[
        str | None,
        typer.Option(help="Free-text interest, e.g. 'I like space documentaries' (new users)."),
    ] = None,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Top-k items for a user from their latest events (unknown users get popular items)."""
    with _service(db) as service:
        result = service.for_user(
            user, k=k, exclude_seen=exclude_seen, interest=interest, explain=explain
        )
    if json_output:
        from .schemas import Recommendations, items_out

        out = Recommendations(user_id=user, items=items_out(result.items), note=result.note)
        print_json({**out.model_dump(mode="json"), "user": user})  # 0.1.0's key, one release
        return
    if result.note:
        console.print(f"[yellow]{result.note}[/yellow]")
    _print_list(result.items, explain)


@app.command()
def similar(
    item: Annotated[str, typer.Argument(help="Item id.")],
    k: KOpt = 10,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Items like this one, by text and by who interacted with both (never the item itself)."""
    with _service(db) as service:
        items = service.similar(item, k)
    if json_output:
        from .schemas import SimilarItems, items_out

        found = SimilarItems(item_id=item, items=items_out(items)).model_dump(mode="json")
        print_json({**found, "item": item, "similar": found["items"]})  # + 0.1.0's keys
        return
    _print_list(items, False)


@app.command()
def withdraw(
    items: Annotated[list[str], typer.Argument(help="Item ids.")],
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Never recommend these items again; their rows and events stay. Posting an item again
    (POST /v1/recommend/items) lists it again; file ingest leaves it withdrawn."""
    from .schemas import WithdrawnItem

    with _service(db) as service:
        newly = set(service.withdraw(items))
    ids = dict.fromkeys(i.strip() for i in items)
    out = [WithdrawnItem(item_id=i, withdrawn=i in newly) for i in ids]
    if json_output:
        print_json({"items": [o.model_dump(mode="json") for o in out]})
        return
    for o in out:
        console.print(f"{o.item_id}: " + ("withdrawn" if o.withdrawn else "already withdrawn"))


@app.command("eval")
def evaluate(
    encoder: EncoderOpt = None,
    interest_model: InterestOpt = True,
    interest_pairs: PairsOpt = 3000,
    interest_lora: LoraOpt = None,
    lora_r: LoraROpt = None,
    lora_alpha: LoraAlphaOpt = None,
    lora_dropout: LoraDropoutOpt = None,
    cold_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of test items made cold (0: skip).")
    ] = 0.2,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Leave-last-out HR@10, NDCG@10 and coverage on the store, beside baselines and cold items."""
    config = _config(
        encoder, interest_model, interest_pairs, interest_lora, lora_r, lora_alpha, lora_dropout
    )
    with (
        _service(db) as service,
        console.status("Evaluating (fits the models on the training part)...", spinner="dots"),
    ):
        report = service.evaluate(config, cold_fraction)
    if json_output:
        print_json(report)
        return
    table = Table(show_header=True, header_style="bold")
    for col in ("model", "HR@10", "NDCG@10", "coverage"):
        table.add_column(col)
    for name, m in [*report.get("baselines", {}).items(), ("recommender", report["model"])]:
        table.add_row(name, f"{m['hr@10']:.4f}", f"{m['ndcg@10']:.4f}", f"{m['coverage']:.4f}")
    console.print(table)
    console.print(
        f"{report['users']} users, {report['items']} items; training {report['train_seconds']} s"
    )
    cold = report.get("cold")
    if cold and cold.get("users"):
        console.print(
            f"cold items: {cold['cold_items']} items, {cold['users']} users: HR@10 {cold['hr@10']} "
            f"(popularity {cold['popularity_hr@10']}); among cold items {cold['hr@10_among_cold']} "
            f"(random {cold['random_hr@10_among_cold']})"
        )


@app.command()
def status(db: DbOpt = None, json_output: JsonOpt = False) -> None:
    """What the store holds and which trained model serves (loads no model)."""
    with _service(db) as service:
        report = service.status()
    if json_output:
        print_json(report)
        return
    console.print(
        f"store {report['store']}: {report['items']} items, {report['events']} events, "
        f"{report['users']} users"
    )
    model = report["model"]
    if model is None:
        console.print("no trained model yet; run `aigc recommend train`")
        return
    info = model["info"]
    console.print(
        f"active model {model['name']} ({model['created_at']}): {info.get('n_items')} items, "
        f"{info.get('n_users')} users, {info.get('n_events')} events, encoder {model['base']}"
    )
    console.print(f"  {model['path']}")
