"""``aigc recommend ...``: ingest a catalogue and events, train, recommend, explain, evaluate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from aigc_apps.console import DbOpt, JsonOpt, console, print_json

# Models (numpy, scikit-learn, faiss, torch) are imported inside the commands that use them,
# so that `aigc ... --help` and `ingest` start at once.
if TYPE_CHECKING:
    from .recommender import RecommenderConfig

app = typer.Typer(
    help="Personalised recommendations from item texts and user behaviour: collaborative "
    "(EASE + sequence) and text-interest models combined by a learned ranker; cold start for "
    "new items and new users.",
    no_args_is_help=True,
)

EncoderOpt = Annotated[
    str,
    typer.Option(help="Content encoder: alias, folder, 'hashing' (no model) or 'none'."),
]
InterestOpt = Annotated[
    bool, typer.Option("--interest-model/--no-interest-model", help="Tune the text interest model.")
]
PairsOpt = Annotated[int, typer.Option(help="Training pairs for the interest model.")]
LoraOpt = Annotated[
    bool,
    typer.Option(
        "--interest-lora/--interest-full",
        help="Tune the interest encoder through LoRA adapters (default) or all its weights.",
    ),
]


def _config(encoder: str, interest: bool, pairs: int, lora: bool = True) -> RecommenderConfig:
    from .interest import InterestConfig
    from .recommender import RecommenderConfig

    return RecommenderConfig(
        encoder=None if encoder.lower() == "none" else encoder,
        interest=InterestConfig(max_pairs=pairs, lora=lora) if interest else None,
    )


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
    from .ingest import ingest as run_ingest
    from .store import open_db

    report = run_ingest(
        open_db(db),
        items,
        events,
        item_columns=ItemColumns(id_col, title_col, description_col, tags_col),
        event_columns=EventColumns(user_col, item_col, type_col, weight_col, rating_col, time_col),
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
    encoder: EncoderOpt = "minilm-l6",
    interest_model: InterestOpt = True,
    interest_pairs: PairsOpt = 3000,
    interest_lora: LoraOpt = True,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Fit every model on the store's items and events and register the new version."""
    from . import service
    from .store import open_db

    with console.status("Training the recommender...", spinner="dots"):
        _, report = service.train(
            open_db(db), _config(encoder, interest_model, interest_pairs, interest_lora)
        )
    if json_output:
        print_json(report)
        return
    console.print(
        f"Trained model version {report['version']} on {report['items']} items, "
        f"{report['users']} users, {report['events']} events in {report['train_seconds']} s "
        f"(ranker: {report['ranker']}, {report['ranker_rows']} rows)"
    )
    console.print(f"Saved to {report['path']}")


def _print_list(result: object, explain: bool) -> None:
    table = Table(show_header=True, header_style="bold")
    for col in ("#", "item", "title", "score"):
        table.add_column(col)
    if explain:
        table.add_column("why")
    for n, rec in enumerate(result.items, start=1):  # type: ignore[attr-defined]
        row = [str(n), rec.item_id, rec.title, f"{rec.score:.4f}"]
        if explain:
            row.append("; ".join(rec.reasons))
        table.add_row(*row)
    console.print(table)


@app.command("for-user")
def for_user(
    user: Annotated[str, typer.Argument(help="User id as in the event log (new users allowed).")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=500, help="How many items.")] = 10,
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
    from . import service
    from .store import open_db

    database = open_db(db)
    model = service.load_active(database)
    events = service.user_events(database, user)
    result = model.recommend(
        user, k=k, exclude_seen=exclude_seen, events=events or None, text=interest, explain=explain
    )
    if json_output:
        print_json(result.to_dict())
        return
    if result.note:
        console.print(f"[yellow]{result.note}[/yellow]")
    _print_list(result, explain)


@app.command()
def similar(
    item: Annotated[str, typer.Argument(help="Item id.")],
    k: Annotated[int, typer.Option("-k", "--k", min=1, max=500, help="How many items.")] = 10,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Items like this one, by text and by who interacted with both."""
    from . import service
    from .store import open_db

    items = service.load_active(open_db(db)).similar(item, k)
    if json_output:
        print_json({"item": item, "similar": items})
        return
    from .recommender import RecommendationList

    _print_list(RecommendationList(None, items), False)


@app.command("eval")
def evaluate(
    encoder: EncoderOpt = "minilm-l6",
    interest_model: InterestOpt = True,
    interest_pairs: PairsOpt = 3000,
    interest_lora: LoraOpt = True,
    cold_fraction: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Share of test items made cold (0: skip).")
    ] = 0.2,
    db: DbOpt = None,
    json_output: JsonOpt = False,
) -> None:
    """Leave-last-out HR@10, NDCG@10 and coverage on the store, beside baselines and cold items."""
    from . import service
    from .store import open_db

    with console.status("Evaluating (fits the models on the training part)...", spinner="dots"):
        report = service.evaluate(
            open_db(db),
            _config(encoder, interest_model, interest_pairs, interest_lora),
            cold_fraction,
        )
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
