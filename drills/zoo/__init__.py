"""Import Internet Topology Zoo graphs (GraphML, GML) as drills topology files, with link delays
from geography (`drill import zoo`): readers in `graphml` and `gml`, the conversion in `importer`."""
