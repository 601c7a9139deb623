"""Starting the Spark session the list jobs run in."""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from typing import TYPE_CHECKING

from cleanroom.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession


def start_spark(app_name: str = "cleanroom") -> SparkSession:
    """The Spark session: the master and settings come from the usual places
    (``spark-defaults.conf``, ``PYSPARK_SUBMIT_ARGS``); without any, local mode on every core."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(
            "--engine spark needs PySpark: pip install 'cleanroom[spark]' (and Java 17+)"
        ) from None
    if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
        raise InputError("--engine spark needs Java 17 or later (java on PATH or JAVA_HOME)")
    # Local workers must run this interpreter, which has cleanroom installed.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # The jobs exchange Arrow batches only; PySpark's pandas-version caution does not apply.
    warnings.filterwarnings(
        "ignore", message="PySpark does not yet fully support pandas", category=FutureWarning
    )
    return (
        SparkSession.builder.appName(app_name)
        .config("spark.ui.showConsoleProgress", "false")  # the CLIs show their own progress
        .getOrCreate()
    )
