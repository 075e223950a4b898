from speedrun.cli import entry

entry()
